import FleetAPI
import Foundation

/// Reads request bodies strictly: malformed JSON, a field of the wrong type, a missing required
/// field and any field the entity does not have are all refused with 400 and a message naming
/// the field. Swift's decoder ignores unknown keys, so the body is first read as a plain JSON
/// tree and its keys checked against `BodySchema`; fleet's own decoder ignored them, but a typo
/// such as "desiredstate" then silently did nothing, which the issue asks us to refuse.
enum JSONBodies {
    static func decode<Entity: Decodable>(_ type: Entity.Type, from body: [UInt8], schema: BodySchema) throws(APIError) -> Entity {
        guard !body.isEmpty else { throw .badRequest("request body is empty; expected \(schema.expectation)") }
        let data = Data(body)
        let tree: JSONValue
        do {
            tree = try JSONDecoder().decode(JSONValue.self, from: data)
        } catch {
            throw .badRequest("request body is not valid JSON")
        }
        try schema.check(tree, path: "")
        do {
            return try JSONDecoder().decode(Entity.self, from: data)
        } catch let error as DecodingError {
            throw .badRequest(message(for: error))
        } catch {
            throw .badRequest("request body could not be read: \(error)")
        }
    }

    static func encode<Entity: Encodable>(_ entity: Entity) -> [UInt8] {
        let encoder = JSONEncoder()
        // Sorted keys match the order fleet's generated Go structs marshalled their fields in,
        // and make every answer byte-for-byte reproducible. Go does not escape '/'.
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        do {
            return Array(try encoder.encode(entity))
        } catch {
            // Only non-finite floating-point values fail to encode, and no entity has one.
            preconditionFailure("encoding \(Entity.self) failed: \(error)")
        }
    }

    private static func message(for error: DecodingError) -> String {
        func field(_ path: [any CodingKey]) -> String {
            var text = ""
            for key in path {
                if let index = key.intValue { text += "[\(index)]" } else { text += text.isEmpty ? key.stringValue : ".\(key.stringValue)" }
            }
            return text.isEmpty ? "the body" : "field \(text)"
        }
        switch error {
        case .keyNotFound(let key, let context):
            return "\(field(context.codingPath + [key])) is required"
        case .valueNotFound(_, let context):
            return "\(field(context.codingPath)) must not be null"
        case .typeMismatch(let type, let context):
            return "\(field(context.codingPath)) has the wrong type (expected \(jsonTypeName(type)))"
        case .dataCorrupted(let context):
            if context.codingPath.last?.stringValue == "desiredState" {
                return "field desiredState must be one of \(FleetUnitTargetState.allCases.map(\.rawValue).joined(separator: ", "))"
            }
            return "\(field(context.codingPath)) has an invalid value"
        @unknown default:
            return "request body could not be read"
        }
    }

    private static func jsonTypeName(_ type: Any.Type) -> String {
        switch type {
        case is String.Type: return "a string"
        case is Bool.Type: return "true or false"
        case is any Numeric.Type: return "a number"
        case is any Collection.Type: return "an array or object"
        default: return "\(type)"
        }
    }
}

/// Which keys a body's objects may have.
indirect enum BodySchema: Sendable {
    case object([String: BodySchema])
    /// An object whose keys match whatever their case, as Go's encoding/json matches them (the
    /// machines PATCH, whose fleet clients send `Value`).
    case objectIgnoringCase([String: BodySchema])
    case array(of: BodySchema)
    /// Any value; its type is checked by the entity's decoder.
    case value

    var expectation: String {
        switch self {
        case .object, .objectIgnoringCase: return "a JSON object"
        case .array: return "a JSON array"
        case .value: return "a JSON value"
        }
    }

    func check(_ tree: JSONValue, path: String) throws(APIError) {
        switch (self, tree) {
        case (.object(let fields), .object(let members)):
            for key in members.keys.sorted() {
                guard let field = fields[key] else {
                    let known = fields.keys.sorted().joined(separator: ", ")
                    throw .badRequest("unknown field \((path.isEmpty ? key : path + "." + key).debugDescription) (known fields: \(known))")
                }
                try field.check(members[key]!, path: path.isEmpty ? key : path + "." + key)
            }
        case (.array(let element), .array(let items)):
            for (index, item) in items.enumerated() { try element.check(item, path: "\(path)[\(index)]") }
        case (.objectIgnoringCase(let fields), .object(let members)):
            for key in members.keys.sorted() {
                guard let field = fields[key] ?? fields[key.lowercased()] else {
                    let known = fields.keys.sorted().joined(separator: ", ")
                    throw .badRequest("unknown field \((path.isEmpty ? key : path + "." + key).debugDescription) (known fields: \(known))")
                }
                try field.check(members[key]!, path: path.isEmpty ? key : path + "." + key)
            }
        case (.object, .null), (.objectIgnoringCase, .null), (.array, .null), (.value, _):
            return
        case (.object, _), (.objectIgnoringCase, _), (.array, _):
            throw .badRequest(path.isEmpty ? "request body must be \(expectation)" : "field \(path) must be \(expectation)")
        }
    }

    static let unitOption = BodySchema.object(["section": .value, "name": .value, "value": .value])
    /// fleet's Unit entity: `currentState` and `machineID` are read-only and ignored on PUT,
    /// but a client that PUTs back what it read may send them, so they are known fields.
    static let unitPut = BodySchema.object([
        "name": .value, "desiredState": .value, "options": .array(of: unitOption),
        "currentState": .value, "machineID": .value,
    ])
    static let machinePatch = BodySchema.array(of: .objectIgnoringCase(["op": .value, "path": .value, "value": .value]))
    static let unitState = BodySchema.object([
        "name": .value, "hash": .value, "machineID": .value, "systemdLoadState": .value,
        "systemdActiveState": .value, "systemdSubState": .value,
    ])
    static let stateReport = BodySchema.object([
        "machineID": .value, "isResync": .value, "states": .array(of: unitState), "gone": .value,
        "scheduleVersion": .value,
    ])
    static let leaseRequest = BodySchema.object(["machineID": .value, "epoch": .value, "holder": .value, "scheduleVersion": .value])
    static let keyringChange = BodySchema.object(["operation": .value, "key": .value])
    static let aclTokenRequest = BodySchema.object(["name": .value, "policies": .value])
    static let authorizeRequest = BodySchema.object(["access": .value, "unit": .value])
}

/// A JSON document as a plain tree, for checking keys before the typed decode.
enum JSONValue: Decodable, Sendable {
    case object([String: JSONValue])
    case array([JSONValue])
    case scalar
    case null

    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if (try? container.decode(Bool.self)) != nil || (try? container.decode(Double.self)) != nil
                    || (try? container.decode(String.self)) != nil {
            self = .scalar
        } else if let items = try? container.decode([JSONValue].self) {
            self = .array(items)
        } else {
            self = .object(try container.decode([String: JSONValue].self))
        }
    }
}
