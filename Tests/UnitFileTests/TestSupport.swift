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

/// SplitMix64 (Steele, Lea and Flood 2014): a tiny seeded generator, so every fuzz failure
/// replays from the seed printed with it.
struct SplitMix64: RandomNumberGenerator {
    private var state: UInt64

    init(seed: UInt64) {
        state = seed
    }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
