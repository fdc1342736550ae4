import FleetAPI
import UnitFile

/// Why `--fields` cannot be used; the texts are fleetctl's.
public enum FieldsError: Error, Hashable, Sendable, CustomStringConvertible {
    case empty
    case invalidKey(String)

    public var description: String {
        switch self {
        case .empty: return "Must define output format"
        case .invalidKey(let key): return "Invalid key in output format: \(key.debugDescription)"
        }
    }
}

/// Parses a `--fields` value (`unit,machine`) against a command's known columns, keeping order.
public func parseFields(_ text: String, valid: [String]) throws(FieldsError) -> [String] {
    guard !text.isEmpty else { throw .empty }
    let keys = text.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
    for key in keys where !valid.contains(key) { throw .invalidKey(key) }
    return keys
}

/// A table: the legend (upper-cased field names) unless `--no-legend`, then one row per item.
public func renderTable(fields: [String], rows: [[String]], noLegend: Bool) -> String {
    Table.render((noLegend ? [] : [fields.map { $0.uppercased() }]) + rows)
}

/// fleetctl's short machine ID: the first 8 characters and an ellipsis, unless `--full`.
public func machineIDLegend(_ machineID: String, full: Bool) -> String {
    full ? machineID : String(machineID.prefix(8)) + "..."
}

/// `<id>/<ip>` as fleetctl showed where a unit runs; the IP is left out when unknown.
public func machineFullLegend(_ machineID: String, ip: String?, full: Bool) -> String {
    let legend = machineIDLegend(machineID, full: full)
    guard let ip, !ip.isEmpty else { return legend }
    return "\(legend)/\(ip)"
}

/// Metadata as `key=value,...` sorted by key; a value written with an operator (`>=3`) keeps it.
public func formatMetadata(_ metadata: [String: String]) -> String {
    guard !metadata.isEmpty else { return "-" }
    let operators = ["<=", ">=", "!=", "==", "<", ">"]
    return metadata.keys.sorted().map { key in
        let value = metadata[key]!
        return operators.contains(where: { value.hasPrefix($0) }) ? key + value : "\(key)=\(value)"
    }.joined(separator: ",")
}

// MARK: - list-machines

public enum MachineFields {
    public static let defaultFields = "machine,ip,metadata"
    /// fleetctl's three, then Flotilla's (which need /flotilla/v1/machines).
    public static let valid = ["machine", "ip", "metadata", "role", "state", "drained", "units", "alarms"]
    public static let flotillaOnly: Set<String> = ["role", "state", "drained", "units", "alarms"]

    public static func row(_ machine: FlotillaMachine, fields: [String], full: Bool) -> [String] {
        fields.map { field in
            switch field {
            case "machine": return machineIDLegend(machine.id, full: full)
            case "ip": return machine.primaryIP.isEmpty ? "-" : machine.primaryIP
            case "metadata": return formatMetadata(machine.metadata)
            case "role": return machine.role.isEmpty ? "-" : machine.role
            case "state": return machine.state.isEmpty ? "-" : machine.state
            case "drained": return String(machine.isDrained)
            case "units": return String(machine.unitCount)
            case "alarms": return machine.alarms.map { $0.isEmpty ? "-" : $0.joined(separator: ",") } ?? "-"
            default: preconditionFailure("field \(field) was not validated against MachineFields.valid")
            }
        }
    }

    /// fleet's entity seen as Flotilla's, for the fields both have.
    public static func detailed(_ machine: FleetMachine) -> FlotillaMachine {
        FlotillaMachine(id: machine.id, primaryIP: machine.primaryIP, metadata: machine.metadata, role: "", state: "",
                        isDrained: false, unitCount: 0)
    }
}

// MARK: - list-units

public enum UnitStateFields {
    public static let defaultFields = "unit,machine,active,sub"
    public static let valid = ["active", "hash", "load", "machine", "sub", "unit"]

    /// `machineIPs` maps machine IDs to their IPs (a machine not in it is shown by ID alone).
    public static func row(_ state: FleetUnitState, fields: [String], full: Bool, machineIPs: [String: String]) -> [String] {
        fields.map { field in
            switch field {
            case "unit": return state.name
            case "load": return dash(state.systemdLoadState)
            case "active": return dash(state.systemdActiveState)
            case "sub": return dash(state.systemdSubState)
            case "machine":
                return state.machineID.isEmpty ? "-" : machineFullLegend(state.machineID, ip: machineIPs[state.machineID], full: full)
            case "hash":
                return state.hash.isEmpty ? "-" : (full ? state.hash : String(state.hash.prefix(7)))
            default: preconditionFailure("field \(field) was not validated against UnitStateFields.valid")
            }
        }
    }
}

// MARK: - list-unit-files

public enum UnitFileFields {
    public static let defaultFields = "unit,hash,dstate,state,target"
    public static let valid = ["desc", "dstate", "global", "hash", "state", "target", "tmachine", "unit"]

    public static func row(_ unit: FleetUnit, fields: [String], full: Bool, machineIPs: [String: String]) -> [String] {
        let file = try? UnitFile(fleetOptions: unit.options)
        let isGlobal = file.map(isGlobalUnit) ?? false
        return fields.map { field in
            switch field {
            case "unit": return unit.name
            case "global": return String(isGlobal)
            case "dstate": return unit.desiredState?.rawValue ?? "-"
            case "state": return isGlobal ? "-" : (unit.currentState?.rawValue ?? "-")
            case "target", "tmachine":
                if isGlobal { return "global" }
                guard let machineID = unit.machineID, !machineID.isEmpty else { return "-" }
                return machineFullLegend(machineID, ip: machineIPs[machineID], full: full)
            case "hash":
                guard let file else { return "-" }
                return full ? file.hash.hex : file.hash.short
            case "desc":
                return file?.values(of: "Description", inSection: "Unit").last.flatMap { $0.isEmpty ? nil : $0 } ?? "-"
            default: preconditionFailure("field \(field) was not validated against UnitFileFields.valid")
            }
        }
    }
}

/// fleet's rule: the last `Global=` of [X-Fleet] decides, and only a true boolean makes it global.
public func isGlobalUnit(_ file: UnitFile) -> Bool {
    guard let value = file.values(of: "Global", inSection: FleetOptions.sectionName).last else { return false }
    return ["true", "yes", "1", "on", "t"].contains(value.lowercased())
}

private func dash(_ text: String) -> String { text.isEmpty ? "-" : text }
