import UnitFile

// The wire entities of fleet's v1 API (fleet's Documentation/api-v1.md and schema/v1.json), so
// that fleet's clients and the orchestrators built on them work unchanged against Flotilla.
// Field names and optionality follow fleet's schema exactly; Flotilla's own additions live in
// Extensions.swift under their own types and their own URL prefix (/flotilla/v1).

/// One option of a unit file, in fleet's flattened form: a unit is sent as the ordered list of
/// its options, never as text.
public struct FleetUnitOption: Codable, Hashable, Sendable {
    public var section: String
    public var name: String
    public var value: String

    public init(section: String, name: String, value: String) {
        self.section = section
        self.name = name
        self.value = value
    }

    private enum CodingKeys: String, CodingKey { case section, name, value }

    /// An absent `value` is the empty value: fleet's generated Go client marks it `omitempty`, so
    /// a unit file line `Environment=` goes out as `{"name":"Environment","section":"Service"}`,
    /// and fleet's server read that as "".
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        section = try container.decode(String.self, forKey: .section)
        name = try container.decode(String.self, forKey: .name)
        value = try container.decodeIfPresent(String.self, forKey: .value) ?? ""
    }
}

/// fleet's desired/current unit states, spelled as on the wire.
public enum FleetUnitTargetState: String, Codable, Hashable, Sendable, CaseIterable {
    case inactive
    case loaded
    case launched
}

/// A unit as fleet's API shows it. `currentState` and `machineID` are read-only (ignored on PUT).
public struct FleetUnit: Codable, Hashable, Sendable {
    public var name: String
    public var options: [FleetUnitOption]
    public var desiredState: FleetUnitTargetState?
    public var currentState: FleetUnitTargetState?
    public var machineID: String?

    public init(name: String, options: [FleetUnitOption], desiredState: FleetUnitTargetState?,
                currentState: FleetUnitTargetState? = nil, machineID: String? = nil) {
        self.name = name
        self.options = options
        self.desiredState = desiredState
        self.currentState = currentState
        self.machineID = machineID
    }
}

/// The body of `PUT /fleet/v1/units/<name>`: `desiredState` (absent when fleetctl creates a
/// unit, see `UnitPutRules`), `options` when creating (or, beyond fleet 0.x, replacing) the
/// unit; `name`, if present, must match the URL.
public struct FleetUnitPutRequest: Codable, Hashable, Sendable {
    public var name: String?
    public var desiredState: FleetUnitTargetState?
    public var options: [FleetUnitOption]?

    public init(name: String? = nil, desiredState: FleetUnitTargetState?, options: [FleetUnitOption]? = nil) {
        self.name = name
        self.desiredState = desiredState
        self.options = options
    }
}

public struct FleetUnitPage: Codable, Hashable, Sendable {
    public var units: [FleetUnit]
    public var nextPageToken: String?

    public init(units: [FleetUnit], nextPageToken: String? = nil) {
        self.units = units
        self.nextPageToken = nextPageToken
    }
}

/// What a machine's systemd reports about a unit (fleet's UnitState entity).
public struct FleetUnitState: Codable, Hashable, Sendable {
    public var name: String
    public var hash: String
    public var machineID: String
    public var systemdLoadState: String
    public var systemdActiveState: String
    public var systemdSubState: String

    public init(name: String, hash: String, machineID: String, systemdLoadState: String,
                systemdActiveState: String, systemdSubState: String) {
        self.name = name
        self.hash = hash
        self.machineID = machineID
        self.systemdLoadState = systemdLoadState
        self.systemdActiveState = systemdActiveState
        self.systemdSubState = systemdSubState
    }
}

public struct FleetUnitStatePage: Codable, Hashable, Sendable {
    public var states: [FleetUnitState]
    public var nextPageToken: String?

    public init(states: [FleetUnitState], nextPageToken: String? = nil) {
        self.states = states
        self.nextPageToken = nextPageToken
    }
}

public struct FleetMachine: Codable, Hashable, Sendable {
    public var id: String
    public var primaryIP: String
    public var metadata: [String: String]

    public init(id: String, primaryIP: String, metadata: [String: String]) {
        self.id = id
        self.primaryIP = primaryIP
        self.metadata = metadata
    }
}

public struct FleetMachinePage: Codable, Hashable, Sendable {
    public var machines: [FleetMachine]
    public var nextPageToken: String?

    public init(machines: [FleetMachine], nextPageToken: String? = nil) {
        self.machines = machines
        self.nextPageToken = nextPageToken
    }
}

/// One JSON-Patch operation of `PATCH /fleet/v1/machines`; `path` is
/// `/<machineID>/metadata/<key>`. Only add, remove and replace exist in fleet.
public struct FleetMachinePatchOperation: Codable, Hashable, Sendable {
    public var op: String
    public var path: String
    public var value: String?

    public init(op: String, path: String, value: String? = nil) {
        self.op = op
        self.path = path
        self.value = value
    }

    /// As fleet's server (Go's encoding/json) reads it: keys match whatever their case (`Value`
    /// as well as `value`), an exact match first. The value is a string, or an object holding
    /// it as `value`: the shape fleet's own functional test (machines_test.go) sends,
    /// `"Value":{"value":"bar"}`.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: AnyKey.self)
        func key(_ name: String) -> AnyKey? {
            container.allKeys.first { $0.stringValue == name }
                ?? container.allKeys.first { $0.stringValue.lowercased() == name }
        }
        guard let opKey = key("op") else {
            throw DecodingError.keyNotFound(CodingKeys.op, .init(codingPath: container.codingPath, debugDescription: "op is required"))
        }
        guard let pathKey = key("path") else {
            throw DecodingError.keyNotFound(CodingKeys.path, .init(codingPath: container.codingPath, debugDescription: "path is required"))
        }
        op = try container.decode(String.self, forKey: opKey)
        path = try container.decode(String.self, forKey: pathKey)
        guard let valueKey = key("value"), !(try container.decodeNil(forKey: valueKey)) else {
            value = nil
            return
        }
        if let text = try? container.decode(String.self, forKey: valueKey) {
            value = text
        } else {
            let wrapped = try container.nestedContainer(keyedBy: AnyKey.self, forKey: valueKey)
            let inner = wrapped.allKeys.first { $0.stringValue == "value" } ?? wrapped.allKeys.first { $0.stringValue.lowercased() == "value" }
            value = try inner.map { try wrapped.decode(String.self, forKey: $0) }
        }
    }

    private struct AnyKey: CodingKey {
        let stringValue: String
        init(stringValue: String) { self.stringValue = stringValue }
        var intValue: Int? { nil }
        init?(intValue: Int) { nil }
    }
}

/// fleet's error entity: `{"error":{"code":400,"message":"..."}}`.
public struct FleetErrorBody: Codable, Hashable, Sendable {
    public struct Detail: Codable, Hashable, Sendable {
        public var code: Int
        public var message: String
    }
    public var error: Detail

    public init(code: Int, message: String) {
        self.error = Detail(code: code, message: message)
    }
}
