import Foundation

/// A JSON value as parsed, keeping booleans, integers and other numbers apart (JSONSerialization
/// on Linux hands back NSNumbers for all three).
indirect enum JSONValue: Decodable, Equatable, CustomStringConvertible {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        // JSONDecoder refuses to read a number as a Bool and the reverse, so the order decides.
        if container.decodeNil() { self = .null }
        else if let value = try? container.decode(Bool.self) { self = .bool(value) }
        else if let value = try? container.decode(Double.self) { self = .number(value) }
        else if let value = try? container.decode(String.self) { self = .string(value) }
        else if let value = try? container.decode([JSONValue].self) { self = .array(value) }
        else { self = .object(try container.decode([String: JSONValue].self)) }
    }

    static func parse(_ bytes: [UInt8]) throws -> JSONValue {
        try JSONDecoder().decode(JSONValue.self, from: Data(bytes))
    }

    subscript(key: String) -> JSONValue? {
        if case .object(let members) = self { return members[key] }
        return nil
    }

    var string: String? { if case .string(let value) = self { return value } else { return nil } }
    var objectMembers: [String: JSONValue]? { if case .object(let members) = self { return members } else { return nil } }
    var arrayElements: [JSONValue]? { if case .array(let elements) = self { return elements } else { return nil } }

    var description: String {
        switch self {
        case .null: return "null"
        case .bool(let value): return "\(value)"
        case .number(let value): return value == value.rounded() && abs(value) < 1e15 ? "\(Int64(value))" : "\(value)"
        case .string(let value): return value.debugDescription
        case .array(let elements): return "[" + elements.map(\.description).joined(separator: ",") + "]"
        case .object(let members): return "{" + members.sorted { $0.key < $1.key }.map { "\($0.key.debugDescription):\($0.value)" }.joined(separator: ",") + "}"
        }
    }
}

/// Checks a JSON value against a schema of the OpenAPI 3.1 document (JSON Schema 2020-12), for
/// the keywords that document uses: type, const, enum, properties, required,
/// additionalProperties, propertyNames, items, min/maxItems, min/maxLength, pattern,
/// minimum/maximum, allOf, oneOf, if/then/else and `$ref` into `#/components/schemas`. A
/// keyword it does not know fails the check, so the document cannot outgrow it unseen.
struct JSONSchemaValidator {
    let document: JSONValue

    static let annotations: Set<String> = ["description", "default", "title", "examples", "example", "contentEncoding",
                                           "contentMediaType", "format", "readOnly", "writeOnly", "deprecated"]

    /// The places where `value` breaks `schema`, as "path: reason"; empty when it conforms.
    func violations(of value: JSONValue, against schema: JSONValue, at path: String = "$") -> [String] {
        if case .bool(let allowed) = schema { return allowed ? [] : ["\(path): no value is allowed here"] }
        guard let keywords = schema.objectMembers else { return ["\(path): the schema is not an object"] }
        var found: [String] = []
        for (keyword, argument) in keywords.sorted(by: { $0.key < $1.key }) {
            switch keyword {
            case "$ref":
                guard let reference = argument.string, reference.hasPrefix("#/components/schemas/"),
                      let target = document["components"]?["schemas"]?[String(reference.dropFirst("#/components/schemas/".count))] else {
                    found.append("\(path): unresolvable $ref \(argument)")
                    continue
                }
                found += violations(of: value, against: target, at: path)
            case "type":
                let names = argument.arrayElements?.compactMap(\.string) ?? argument.string.map { [$0] } ?? []
                if !names.contains(where: { Self.has(type: $0, value) }) { found.append("\(path): \(value) is not of type \(names)") }
            case "const":
                if value != argument { found.append("\(path): \(value) is not \(argument)") }
            case "enum":
                if !(argument.arrayElements ?? []).contains(value) { found.append("\(path): \(value) is not one of \(argument)") }
            case "properties":
                guard let members = value.objectMembers else { continue }
                for (name, propertySchema) in argument.objectMembers ?? [:] {
                    if let member = members[name] { found += violations(of: member, against: propertySchema, at: "\(path).\(name)") }
                }
            case "required":
                guard let members = value.objectMembers else { continue }
                for name in argument.arrayElements?.compactMap(\.string) ?? [] where members[name] == nil {
                    found.append("\(path): required member \(name) is missing")
                }
            case "additionalProperties":
                guard let members = value.objectMembers else { continue }
                let declared = Set(keywords["properties"]?.objectMembers?.keys.map { $0 } ?? [])
                for (name, member) in members where !declared.contains(name) {
                    found += violations(of: member, against: argument, at: "\(path).\(name)")
                }
            case "propertyNames":
                for name in value.objectMembers?.keys.map({ $0 }) ?? [] {
                    found += violations(of: .string(name), against: argument, at: "\(path)[key \(name.debugDescription)]")
                }
            case "items":
                for (index, element) in (value.arrayElements ?? []).enumerated() {
                    found += violations(of: element, against: argument, at: "\(path)[\(index)]")
                }
            case "minItems", "maxItems":
                guard let elements = value.arrayElements, case .number(let bound) = argument else { continue }
                if keyword == "minItems" ? Double(elements.count) < bound : Double(elements.count) > bound {
                    found.append("\(path): \(elements.count) items breaks \(keyword) \(bound)")
                }
            case "minLength", "maxLength":
                guard let text = value.string, case .number(let bound) = argument else { continue }
                let length = Double(text.unicodeScalars.count)
                if keyword == "minLength" ? length < bound : length > bound { found.append("\(path): length \(length) breaks \(keyword) \(bound)") }
            case "pattern":
                guard let text = value.string, let pattern = argument.string else { continue }
                let expression = try? NSRegularExpression(pattern: pattern)
                if expression?.firstMatch(in: text, range: NSRange(text.startIndex..., in: text)) == nil {
                    found.append("\(path): \(text.debugDescription) does not match \(pattern)")
                }
            case "minimum", "maximum":
                guard case .number(let number) = value, case .number(let bound) = argument else { continue }
                if keyword == "minimum" ? number < bound : number > bound { found.append("\(path): \(number) breaks \(keyword) \(bound)") }
            case "allOf":
                for part in argument.arrayElements ?? [] { found += violations(of: value, against: part, at: path) }
            case "oneOf":
                let matching = (argument.arrayElements ?? []).filter { violations(of: value, against: $0, at: path).isEmpty }
                if matching.count != 1 { found.append("\(path): \(value) matches \(matching.count) of oneOf's schemas, not one") }
            case "if":
                let branch = violations(of: value, against: argument, at: path).isEmpty ? keywords["then"] : keywords["else"]
                if let branch { found += violations(of: value, against: branch, at: path) }
            case "then", "else":
                continue
            default:
                if !Self.annotations.contains(keyword) { found.append("\(path): the validator does not know keyword \(keyword)") }
            }
        }
        return found
    }

    private static func has(type name: String, _ value: JSONValue) -> Bool {
        switch (name, value) {
        case ("null", .null), ("boolean", .bool), ("string", .string), ("array", .array), ("object", .object), ("number", .number):
            return true
        case ("integer", .number(let number)):
            return number == number.rounded(.towardZero)
        default:
            return false
        }
    }
}
