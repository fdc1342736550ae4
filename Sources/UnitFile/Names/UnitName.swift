/// A unit name as systemd validates it (`unit_name_is_valid()` in src/basic/unit-name.c):
///
/// - at most 255 bytes including the type suffix (`UNIT_NAME_MAX` is 256 with the NUL);
/// - ends in `.` and a known `UnitType`;
/// - before the suffix, only ASCII letters, digits and `:-_.\` plus `@`;
/// - the part before the first `@`, the prefix, is not empty;
/// - `prefix.type` is a plain unit, `prefix@.type` a template, `prefix@instance.type` an
///   instance of it; the instance may itself contain `@` (systemd allows any `@` after the
///   first).
///
/// Since `/` and NUL are never allowed, a valid name is always a single path component: it
/// cannot climb out of a unit directory, which is why the checks for those characters come
/// first and say so.
public struct UnitName: Hashable, Sendable, Comparable, CustomStringConvertible {
    /// The longest unit name, suffix included, in bytes.
    public static let lengthMax = 255

    /// Which of systemd's three name forms this is.
    public enum Form: Hashable, Sendable {
        /// `foo.service`
        case plain
        /// `foo@.service`
        case template
        /// `foo@bar.service`
        case instance
    }

    /// The full name, e.g. `foo@bar.service` (systemd's `%n`).
    public let rawValue: String
    public let type: UnitType
    public let form: Form
    /// The part before the first `@`, or the whole name without suffix for a plain unit
    /// (systemd's `%p`).
    public let prefix: String
    /// The part between the first `@` and the suffix, for an instance only (systemd's `%i`).
    public let instance: String?

    /// Validates `name`, reporting the first rule it breaks.
    public init(_ name: String) throws(UnitNameError) {
        let bytes = Array(name.utf8)
        guard !bytes.isEmpty else { throw .empty }
        guard !bytes.contains(Self.slash) else { throw .containsSlash(name) }
        guard !bytes.contains(0) else { throw .containsNUL(name) }
        guard bytes.count <= Self.lengthMax else { throw .tooLong(lengthBytes: bytes.count) }
        guard let dot = bytes.lastIndex(of: Self.dot) else { throw .missingTypeSuffix(name) }
        guard dot > 0 else { throw .emptyPrefix(name) }
        let suffix = String(decoding: bytes[(dot + 1)...], as: UTF8.self)
        guard let type = UnitType(rawValue: suffix) else { throw .unknownType(suffix) }

        let stem = bytes[..<dot]
        if let bad = Self.firstInvalidScalar(in: String(decoding: stem, as: UTF8.self), allowingAt: true) {
            throw .invalidCharacter(name: name, character: bad)
        }
        let at = stem.firstIndex(of: Self.at)
        if at == stem.startIndex { throw .emptyPrefix(name) }

        self.rawValue = name
        self.type = type
        if let at {
            self.prefix = String(decoding: stem[..<at], as: UTF8.self)
            let instance = stem[(at + 1)...]
            self.form = instance.isEmpty ? .template : .instance
            self.instance = instance.isEmpty ? nil : String(decoding: instance, as: UTF8.self)
        } else {
            self.prefix = String(decoding: stem, as: UTF8.self)
            self.form = .plain
            self.instance = nil
        }
    }

    /// Builds `prefix.type` or, given an instance, `prefix@instance.type` (systemd's
    /// `unit_name_build()`).
    public init(prefix: String, instance: String? = nil, type: UnitType) throws(UnitNameError) {
        try Self.validatePrefix(prefix)
        if let instance {
            try Self.validateInstance(instance)
            try self.init(prefix + "@" + instance + type.suffix)
        } else {
            try self.init(prefix + type.suffix)
        }
    }

    /// Builds the template `prefix@.type`.
    public static func template(prefix: String, type: UnitType) throws(UnitNameError) -> UnitName {
        try validatePrefix(prefix)
        return try UnitName(prefix + "@" + type.suffix)
    }

    /// The instance of this template named `instance`: `foo@.service` with `bar` gives
    /// `foo@bar.service`. Only templates can be instantiated.
    public func instantiated(with instance: String) throws(UnitNameError) -> UnitName {
        guard form == .template else { throw .notATemplate(rawValue) }
        return try UnitName(prefix: prefix, instance: instance, type: type)
    }

    /// The template an instance comes from, or the template itself; nil for a plain unit.
    public var template: UnitName? {
        switch form {
        case .plain: return nil
        case .template: return self
        case .instance: return try? UnitName.template(prefix: prefix, type: type)
        }
    }

    /// The name without its type suffix, e.g. `foo@bar` (systemd's and fleet's `%N`).
    public var nameWithoutSuffix: String {
        String(rawValue.utf8.dropLast(type.suffix.utf8.count)) ?? rawValue
    }

    /// Whether fleet would have accepted this unit for scheduling: one of fleet's seven types,
    /// and, for templates and instances, a type systemd can instantiate.
    public var isSchedulableByFleet: Bool {
        type.isSchedulableByFleet && (form == .plain || type.supportsTemplates)
    }

    public var description: String { rawValue }

    public static func < (lhs: UnitName, rhs: UnitName) -> Bool {
        lhs.rawValue < rhs.rawValue
    }

    private static let slash = UInt8(ascii: "/")
    private static let dot = UInt8(ascii: ".")
    private static let at = UInt8(ascii: "@")

    private static func validatePrefix(_ prefix: String) throws(UnitNameError) {
        guard !prefix.isEmpty, firstInvalidScalar(in: prefix, allowingAt: false) == nil else {
            throw .invalidPrefix(prefix)
        }
    }

    private static func validateInstance(_ instance: String) throws(UnitNameError) {
        guard !instance.isEmpty, firstInvalidScalar(in: instance, allowingAt: true) == nil else {
            throw .invalidInstance(instance)
        }
    }

    /// systemd's `VALID_CHARS` (letters, digits, `:-_.\`), optionally with `@`.
    private static func firstInvalidScalar(in text: String, allowingAt: Bool) -> Unicode.Scalar? {
        text.unicodeScalars.first { scalar in
            switch scalar {
            case "a"..."z", "A"..."Z", "0"..."9", ":", "-", "_", ".", "\\": return false
            case "@": return !allowingAt
            default: return true
            }
        }
    }
}

/// Why a string is not a unit name, or why a name cannot be built.
public enum UnitNameError: Error, Hashable, Sendable, CustomStringConvertible {
    case empty
    /// A `/` would make the name a path, able to leave the unit directory (`../x.service`).
    case containsSlash(String)
    /// A NUL would cut the name short wherever it meets C code.
    case containsNUL(String)
    case tooLong(lengthBytes: Int)
    case missingTypeSuffix(String)
    case unknownType(String)
    case emptyPrefix(String)
    case invalidCharacter(name: String, character: Unicode.Scalar)
    case notATemplate(String)
    case invalidPrefix(String)
    case invalidInstance(String)

    public var description: String {
        switch self {
        case .empty:
            return "unit name is empty"
        case .containsSlash(let name):
            return "unit name \(quoted(name)) contains '/': unit names are single file names, never paths"
        case .containsNUL(let name):
            return "unit name \(quoted(name)) contains a NUL byte"
        case .tooLong(let length):
            return "unit name is \(length) bytes, more than the limit of \(UnitName.lengthMax)"
        case .missingTypeSuffix(let name):
            return "unit name \(quoted(name)) has no type suffix such as .service"
        case .unknownType(let suffix):
            return "unknown unit type \(quoted(suffix))"
        case .emptyPrefix(let name):
            return "unit name \(quoted(name)) has nothing before its '@' or suffix"
        case .invalidCharacter(let name, let character):
            let shown = quoted(String(character))
            return "unit name \(quoted(name)) contains \(shown): only ASCII letters, digits, ':', '-', '_', '.', '\\' and '@' are allowed"
        case .notATemplate(let name):
            return "\(quoted(name)) is not a template (name@.type), so it cannot be instantiated"
        case .invalidPrefix(let prefix):
            return "invalid unit name prefix \(quoted(prefix))"
        case .invalidInstance(let instance):
            return "invalid unit instance name \(quoted(instance))"
        }
    }
}
