import TestSupport
import Testing

@testable import UnitFile

/// Deterministic fuzzing: every input comes from a seeded SplitMix64, and each failure message
/// carries the seed and iteration that replay it. The parser may refuse an input only with a
/// `UnitFileError` (typed throws make anything else impossible); it must never trap. Whatever
/// it accepts must survive serialise-then-parse unchanged.
@Suite(.onBackgroundThreads) struct FuzzTests {
    static let seeds: [UInt64] = [1, 2, 3, 0xF1EE7, 0xDEAD_BEEF]
    static let iterationsPerSeed = 400

    /// Bytes that matter to the syntax, drawn more often than chance would.
    static let interestingBytes: [UInt8] =
        Array("[]=\\\n\r\0#; \t\"'@%*?aZ9.-".utf8) + [0xEF, 0xBB, 0xBF, 0xFF, 0xC3, 0xA9, 0x7F, 0x01]

    static func randomBytes(using generator: inout SplitMix64) -> [UInt8] {
        let count = Int.random(in: 0...300, using: &generator)
        return (0..<count).map { _ in
            if Bool.random(using: &generator) {
                return interestingBytes.randomElement(using: &generator) ?? 0
            }
            return UInt8.random(in: 0...255, using: &generator)
        }
    }

    /// A line that looks like unit syntax, often slightly wrong.
    static func randomLine(using generator: inout SplitMix64) -> String {
        let words = ["Unit", "Service", "X-Fleet", "Exec Start", "A", "", " ", "x\\", "\\\\", "=", "#c", ";", "\u{FEFF}", "ü", "\"q\""]
        func word() -> String { words.randomElement(using: &generator) ?? "" }
        switch Int.random(in: 0..<8, using: &generator) {
        case 0: return "[" + word() + "]"
        case 1: return word() + "=" + word() + word()
        case 2: return " " + word() + " = " + word() + " \\"
        case 3: return "# " + word() + "\\"
        case 4: return ""
        case 5: return word() + word()
        case 6: return "  " + word() + "=" + word() + "\\\\ "
        default: return "Key=" + word() + "\\"
        }
    }

    static func randomUnitText(using generator: inout SplitMix64) -> String {
        let lineCount = Int.random(in: 0...25, using: &generator)
        let endings = ["\n", "\r\n", "\r", "\n\n", "\u{0}"]
        var text = Bool.random(using: &generator) ? "[Unit]\n" : ""
        for _ in 0..<lineCount {
            text += randomLine(using: &generator) + (endings.randomElement(using: &generator) ?? "\n")
        }
        return text
    }

    /// Checks the invariants for one input; returns whether it parsed.
    @discardableResult
    static func check(_ bytes: [UInt8], limits: UnitFileLimits, context: String) -> Bool {
        do {
            let file = try UnitFile(parsing: bytes, limits: limits)
            let canonical = file.serializedBytes()
            let reparsed = try UnitFile(parsing: canonical)
            #expect(reparsed == file, "\(context): round trip changed the file")
            #expect(reparsed.serializedBytes() == canonical, "\(context): canonical form not stable")
            #expect(reparsed.hash == file.hash, "\(context)")
            return true
        } catch {
            #expect(!error.description.isEmpty, "\(context)")
            return false
        }
    }

    @Test(arguments: seeds)
    func randomBytesNeverCrashTheParser(seed: UInt64) {
        var generator = SplitMix64(seed: seed)
        let tight = UnitFileLimits(unitFileSizeMax: 200, lineLengthMax: 24)
        for iteration in 0..<Self.iterationsPerSeed {
            let bytes = Self.randomBytes(using: &generator)
            let limits = Bool.random(using: &generator) ? UnitFileLimits.standard : tight
            Self.check(bytes, limits: limits, context: "seed \(seed) iteration \(iteration)")
        }
    }

    @Test(arguments: seeds)
    func unitLikeTextRoundTripsWheneverItParses(seed: UInt64) {
        var generator = SplitMix64(seed: seed)
        var parsedCount = 0
        for iteration in 0..<Self.iterationsPerSeed {
            let text = Self.randomUnitText(using: &generator)
            if Self.check(Array(text.utf8), limits: .standard, context: "seed \(seed) iteration \(iteration)") {
                parsedCount += 1
            }
        }
        // The generator should exercise the success path too, not only the errors.
        #expect(parsedCount >= Self.iterationsPerSeed / 10, "seed \(seed): only \(parsedCount) inputs parsed")
    }

    @Test(arguments: seeds)
    func randomNamesPatternsAndFleetSectionsNeverCrash(seed: UInt64) throws {
        var generator = SplitMix64(seed: seed)
        let alphabet = Array("ab@.-_:\\/%*?[]^!\" =\u{0}é".unicodeScalars)
        func randomText(_ lengthMax: Int) -> String {
            let count = Int.random(in: 0...lengthMax, using: &generator)
            var scalars = String.UnicodeScalarView()
            for _ in 0..<count { scalars.append(alphabet.randomElement(using: &generator) ?? "a") }
            return String(scalars)
        }
        let unitName = try UnitName("web@1.service")
        let keys = ["MachineID", "MachineOf", "MachineMetadata", "Conflicts", "Replaces", "Global", "X-Conflicts", "Bogus"]
        for _ in 0..<Self.iterationsPerSeed {
            if let name = try? UnitName(randomText(12) + ".service") {
                #expect(name.rawValue.utf8.count <= UnitName.lengthMax)
                #expect((try? UnitName(name.rawValue)) == name)
            }
            if let glob = try? Glob(randomText(10)) {
                _ = glob.matches(randomText(10))
            }
            var section = "[X-Fleet]\n"
            for _ in 0..<Int.random(in: 0...4, using: &generator) {
                let key = keys.randomElement(using: &generator) ?? "Global"
                section += key + "=" + randomText(8).replacingNewlinesAndNULs() + "\n"
            }
            if let file = try? UnitFile(parsing: section) {
                _ = try? FleetOptions(unitFile: file, unitName: unitName)
            }
        }
    }
}

extension String {
    fileprivate func replacingNewlinesAndNULs() -> String {
        String(unicodeScalars.map { $0 == "\n" || $0 == "\u{0}" ? " " : Character($0) })
    }
}
