import TestSupport
import Testing

@testable import UnitFile

@Suite(.onBackgroundThreads) struct LimitsTests {
    /// 100,000 continuation lines (the shape that took the old parser quadratic time; its speed
    /// is measured by Contrib/bench/unitfile): joined into one value, each `\` a space.
    @Test func manyContinuationLinesJoinIntoOneValue() throws {
        let count = 100_000
        let text = "[Service]\nExecStart=/bin/echo \\\n" + String(repeating: "a\\\n", count: count) + "b\n"
        let file = try UnitFile(parsing: text)
        let value = try #require(file.values(of: "ExecStart", inSection: "Service").first)
        // "echo " then the first backslash as a space, then "a " per line.
        let joinedAsExpected = value == "/bin/echo  " + String(repeating: "a ", count: count) + "b"
        #expect(joinedAsExpected, "\(value.utf8.count) bytes, starting \(value.prefix(24).debugDescription)")
    }

    @Test func defaultLimitsAreOneMebibyteForFileAndLine() {
        #expect(UnitFile.unitFileSizeMax == 1_048_576)
        #expect(UnitFile.lineLengthMax == 1_048_576)
        #expect(UnitFileLimits.standard.unitFileSizeMax == UnitFile.unitFileSizeMax)
        #expect(UnitFileLimits.standard.lineLengthMax == UnitFile.lineLengthMax)
    }

    @Test func fileLargerThanTheLimitIsRefusedBeforeParsing() {
        let bytes = [UInt8](repeating: UInt8(ascii: "#"), count: UnitFile.unitFileSizeMax + 1)
        #expect(parseError(bytes) == .fileTooLarge(sizeBytes: UnitFile.unitFileSizeMax + 1, limitBytes: UnitFile.unitFileSizeMax))
    }

    @Test func fileOfExactlyTheLimitIsParsed() throws {
        let header = Array("[S]\nA=".utf8)
        let bytes = header + [UInt8](repeating: UInt8(ascii: "x"), count: UnitFile.unitFileSizeMax - header.count)
        let file = try UnitFile(parsing: bytes)
        #expect(file.sections[0].options[0].value.utf8.count == UnitFile.unitFileSizeMax - header.count)
    }

    @Test func physicalLineLongerThanTheLimitIsRefusedWithItsNumber() {
        let limits = UnitFileLimits(unitFileSizeMax: 1000, lineLengthMax: 20)
        #expect(parseError("[S]\nA=" + String(repeating: "x", count: 18) + "\n", limits: limits) == nil)
        #expect(
            parseError("[S]\nA=" + String(repeating: "x", count: 19) + "\n", limits: limits)
                == .lineTooLong(line: 2, limitBytes: 20))
    }

    @Test func joinedContinuationLongerThanTheLimitIsRefused() {
        let limits = UnitFileLimits(unitFileSizeMax: 1000, lineLengthMax: 20)
        let input = "[S]\nA=0123456789\\\n0123456789\n"
        #expect(parseError(input, limits: limits) == .lineTooLong(line: 3, limitBytes: 20))
    }

    @Test func longCommentLinesCountToo() {
        let limits = UnitFileLimits(unitFileSizeMax: 1000, lineLengthMax: 20)
        #expect(parseError("# " + String(repeating: "c", count: 30) + "\n", limits: limits) == .lineTooLong(line: 1, limitBytes: 20))
    }
}
