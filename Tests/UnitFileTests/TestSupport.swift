@testable import UnitFile

/// A unit file flattened to (section, key, value) triples in canonical order, which makes
/// table expectations short to write and easy to read in failures.
struct Assignment: Hashable, CustomStringConvertible {
    let section: String
    let key: String
    let value: String

    init(_ section: String, _ key: String, _ value: String) {
        self.section = section
        self.key = key
        self.value = value
    }

    var description: String { "[\(section)] \(key)=\(value)" }
}

extension UnitFile {
    var assignments: [Assignment] {
        options.map { Assignment($0.section, $0.option.name, $0.option.value) }
    }
}

/// Parses and returns the error, or nil when parsing succeeded.
func parseError(_ text: String, limits: UnitFileLimits = .standard) -> UnitFileError? {
    parseError(Array(text.utf8), limits: limits)
}

func parseError(_ bytes: [UInt8], limits: UnitFileLimits = .standard) -> UnitFileError? {
    do {
        _ = try UnitFile(parsing: bytes, limits: limits)
        return nil
    } catch {
        return error
    }
}
