/// A parsed systemd unit file: sections in order, each holding its options in order.
///
/// The model is the one fleet hashed (go-systemd's list of options, grouped by section), so two
/// files are equal exactly when fleet would have given them the same hash:
///
/// - A section header that appears twice is merged into the first occurrence. For unit files
///   this is what systemd does too: an assignment means the same whichever `[Service]` block
///   it sits in, and order is kept among options of one section, which is the only order
///   systemd's list settings depend on.
/// - A section with no options is dropped: it has no effect in systemd, and go-systemd's
///   serialiser, which fleet's hash is computed over, never writes one.
/// - Sections appear in the order of their first option.
/// - Repeated keys are all kept in order; an empty assignment (`Key=`) is kept as an option
///   with an empty value, because in systemd it resets a list setting.
///
/// Parse with `init(parsing:limits:)`; write with `serialized()`; identify with `hash`.
/// `UnitFile(parsing: x.serialized()) == x` holds for every unit file.
public struct UnitFile: Hashable, Sendable {
    /// The largest unit file accepted by default, in bytes (see `UnitFileLimits`).
    public static let unitFileSizeMax = 1 << 20
    /// The longest line accepted by default, in bytes: systemd's `LONG_LINE_MAX`.
    public static let lineLengthMax = 1 << 20

    /// Sections in the order of their first option; names are unique and none is empty.
    public let sections: [UnitSection]

    /// A unit file with no options; it serialises to no bytes at all.
    public static let empty = UnitFile(sections: [])

    /// Builds a unit file from sections, merging repeated section names into the first
    /// occurrence and dropping sections without options, as parsing does.
    public init(sections: [UnitSection]) {
        var merged: [UnitSection] = []
        var indexByName: [String: Int] = [:]
        for section in sections where !section.options.isEmpty {
            if let index = indexByName[section.name] {
                merged[index] = merged[index].appending(section.options)
            } else {
                indexByName[section.name] = merged.count
                merged.append(section)
            }
        }
        self.sections = merged
    }

    /// The section with this name, if the file has one with options.
    public func section(named name: String) -> UnitSection? {
        sections.first { $0.name == name }
    }

    /// Every value assigned to `key` in `section`, in file order, empty assignments included.
    public func values(of key: String, inSection section: String) -> [String] {
        self.section(named: section)?.values(of: key) ?? []
    }

    /// The options flattened in canonical order, each with its section's name.
    public var options: [(section: String, option: UnitOption)] {
        sections.flatMap { section in section.options.map { (section.name, $0) } }
    }
}

/// One `[Name]` section and its options in order.
public struct UnitSection: Hashable, Sendable {
    public let name: String
    public let options: [UnitOption]

    /// Validates the name so the section can be written as `[Name]` and read back unchanged:
    /// systemd refuses control characters, quotes and backslashes in section names.
    public init(name: String, options: [UnitOption]) throws(UnitFileError) {
        guard SyntaxRules.isSafeSectionName(name.utf8) else {
            throw .invalidSectionName(name)
        }
        self.init(validatedName: name, options: options)
    }

    init(validatedName: String, options: [UnitOption]) {
        self.name = validatedName
        self.options = options
    }

    /// Every value assigned to `key`, in order, empty assignments included.
    public func values(of key: String) -> [String] {
        options.lazy.filter { $0.name == key }.map(\.value)
    }

    func appending(_ more: [UnitOption]) -> UnitSection {
        UnitSection(validatedName: name, options: options + more)
    }
}

/// One `Name=Value` assignment.
///
/// `value` is what systemd sees. `rawValue` is what go-systemd, and so fleet, kept: they differ
/// only for a value continued over several lines, where systemd replaces each trailing
/// backslash by a space and joins the lines, while go-systemd keeps the backslashes and the
/// line breaks (go-systemd pull request #108). The canonical form writes `rawValue`, so a
/// unit with continuation lines hashes as it did in fleet and still reads the same in systemd.
public struct UnitOption: Hashable, Sendable {
    /// The key, without surrounding whitespace.
    public let name: String
    /// The value as systemd reads it: continuations joined, surrounding whitespace removed.
    public let value: String
    /// The value as written: equal to `value` unless it was continued over several lines.
    public let rawValue: String

    /// An option built in code. The value is one line (no line breaks, no surrounding
    /// whitespace) so that writing it and reading it back gives the same option.
    public init(name: String, value: String) throws(UnitFileError) {
        guard SyntaxRules.isValidOptionName(name) else { throw .invalidOptionName(name) }
        guard SyntaxRules.isValidSingleLineValue(value) else {
            throw .invalidOptionValue(name: name, value: value)
        }
        self.init(validatedName: name, value: value, rawValue: value)
    }

    init(validatedName: String, value: String, rawValue: String) {
        self.name = validatedName
        self.value = value
        self.rawValue = rawValue
    }

    /// True when the option was written over several lines with backslash continuations.
    public var isContinued: Bool { value != rawValue }
}
