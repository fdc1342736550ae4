import TestSupport
import Testing

@testable import UnitFile

/// A pattern, a name, and Go's `path.Match` answer: true, false, or nil for ErrBadPattern.
struct GlobCase: Sendable, CustomTestStringConvertible {
    let pattern: String
    let name: String
    let matches: Bool?
    var testDescription: String { "\(quoted(pattern)) vs \(quoted(name))" }
}

/// Every expectation here was checked against Go 1.19's `path.Match` on this machine.
let globCases: [GlobCase] = [
    GlobCase(pattern: "abc", name: "abc", matches: true),
    GlobCase(pattern: "*", name: "abc", matches: true),
    GlobCase(pattern: "*c", name: "abc", matches: true),
    GlobCase(pattern: "a*", name: "a", matches: true),
    GlobCase(pattern: "a*", name: "abc", matches: true),
    GlobCase(pattern: "a*", name: "ab/c", matches: false),
    GlobCase(pattern: "a*/b", name: "abc/b", matches: true),
    GlobCase(pattern: "a*/b", name: "a/c/b", matches: false),
    GlobCase(pattern: "a*b*c*d*e*/f", name: "axbxcxdxe/f", matches: true),
    GlobCase(pattern: "a*b*c*d*e*/f", name: "axbxcxdxexxx/f", matches: true),
    GlobCase(pattern: "a*b*c*d*e*/f", name: "axbxcxdxe/xxx/f", matches: false),
    GlobCase(pattern: "a*b?c*x", name: "abxbbxdbxebxczzx", matches: true),
    GlobCase(pattern: "a*b?c*x", name: "abxbbxdbxebxczzy", matches: false),
    GlobCase(pattern: "ab[c]", name: "abc", matches: true),
    GlobCase(pattern: "ab[b-d]", name: "abc", matches: true),
    GlobCase(pattern: "ab[e-g]", name: "abc", matches: false),
    GlobCase(pattern: "ab[^c]", name: "abc", matches: false),
    GlobCase(pattern: "ab[^b-d]", name: "abc", matches: false),
    GlobCase(pattern: "ab[^e-g]", name: "abc", matches: true),
    GlobCase(pattern: "a\\*b", name: "a*b", matches: true),
    GlobCase(pattern: "a\\*b", name: "ab", matches: false),
    GlobCase(pattern: "a?b", name: "a☺b", matches: true),
    GlobCase(pattern: "a[^a]b", name: "a☺b", matches: true),
    GlobCase(pattern: "a???b", name: "a☺b", matches: false),
    GlobCase(pattern: "[a-ζ]*", name: "α", matches: true),
    GlobCase(pattern: "*[a-ζ]", name: "A", matches: false),
    GlobCase(pattern: "a?b", name: "a/b", matches: false),
    GlobCase(pattern: "a*b", name: "a/b", matches: false),
    GlobCase(pattern: "[\\]a]", name: "]", matches: true),
    GlobCase(pattern: "[\\-]", name: "-", matches: true),
    GlobCase(pattern: "[x\\-]", name: "x", matches: true),
    GlobCase(pattern: "[x\\-]", name: "-", matches: true),
    GlobCase(pattern: "[x\\-]", name: "z", matches: false),
    GlobCase(pattern: "*x", name: "xxx", matches: true),
    GlobCase(pattern: "[z-a]", name: "m", matches: false),
    GlobCase(pattern: "[z-ab]", name: "b", matches: true),
    GlobCase(pattern: "[^/]", name: "/", matches: false),
    GlobCase(pattern: "web@*.service", name: "web@1.service", matches: true),
    GlobCase(pattern: "web@*.service", name: "web@.service", matches: true),
    GlobCase(pattern: "foo\\x2dbar.service", name: "foo\\x2dbar.service", matches: false),
    GlobCase(pattern: "foo\\\\x2dbar.service", name: "foo\\x2dbar.service", matches: true),
    GlobCase(pattern: "", name: "", matches: true),
    GlobCase(pattern: "", name: "a", matches: false),
    GlobCase(pattern: "**", name: "abc", matches: true),
    GlobCase(pattern: "[*]", name: "*", matches: true),
    GlobCase(pattern: "[*]", name: "a", matches: false),
    GlobCase(pattern: "a]", name: "a]", matches: true),
    GlobCase(pattern: "[!a]", name: "!", matches: true),
    GlobCase(pattern: "[!a]", name: "b", matches: false),
    GlobCase(pattern: "[]a]", name: "]", matches: nil),
    GlobCase(pattern: "[-]", name: "-", matches: nil),
    GlobCase(pattern: "[x-]", name: "x", matches: nil),
    GlobCase(pattern: "[-x]", name: "x", matches: nil),
    GlobCase(pattern: "\\", name: "a", matches: nil),
    GlobCase(pattern: "[a-b-c]", name: "a", matches: nil),
    GlobCase(pattern: "[", name: "a", matches: nil),
    GlobCase(pattern: "[^", name: "a", matches: nil),
    GlobCase(pattern: "[^bc", name: "a", matches: nil),
    GlobCase(pattern: "a[", name: "a", matches: nil),
]

@Suite(.onBackgroundThreads) struct GlobTests {
    @Test(arguments: globCases)
    func matchesAsGoPathMatch(_ testCase: GlobCase) {
        let result: Bool?
        do {
            result = try Glob.matches(pattern: testCase.pattern, name: testCase.name)
        } catch {
            result = nil
        }
        #expect(result == testCase.matches)
    }

    @Test func malformedPatternsSayWhy() {
        #expect(throws: GlobError.danglingEscape) { try Glob("abc\\") }
        #expect(throws: GlobError.unterminatedClass) { try Glob("a[bc") }
        #expect(throws: GlobError.misplacedClassCharacter("]")) { try Glob("[]") }
        #expect(throws: GlobError.misplacedClassCharacter("-")) { try Glob("[-a]") }
    }

    @Test func overlongPatternsAreRefused() {
        let pattern = String(repeating: "*", count: Glob.patternLengthMax + 1)
        #expect(throws: GlobError.tooLong(lengthBytes: Glob.patternLengthMax + 1, limitBytes: Glob.patternLengthMax)) {
            try Glob(pattern)
        }
    }

    /// The shift-and walk and the table give the same answer, on seeded random patterns and
    /// names over a small alphabet (so that matches are frequent), non-ASCII scalars and the
    /// longest names included.
    @Test func theShiftAndWalkAgreesWithTheTable() throws {
        var state: UInt64 = 0x5EED_61_0B
        func next(_ bound: Int) -> Int {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Int((state >> 33) % UInt64(bound))
        }
        let pieces = ["a", "b", "é", "*", "?", "[ab]", "[^a]", "[a-c]", "\\*", "."]
        let letters: [Character] = ["a", "b", "c", "é", "*", "."]
        var matchesSeen = 0
        for round in 0..<20_000 {
            let pattern = (0..<next(8)).map { _ in pieces[next(pieces.count)] }.joined()
            let length = round % 100 == 0 ? Glob.nameLengthMax - next(3) : next(12)
            let name = String((0..<length).map { _ in round % 100 == 0 ? "a" : letters[next(letters.count)] })
            let glob = try Glob(pattern)
            let fast = glob.matches(name)
            #expect(fast == glob.matchesByTable(Array(name.unicodeScalars)), "\(pattern) on \(name)")
            if fast { matchesSeen += 1 }
        }
        #expect(matchesSeen > 500, "too few matches to compare: \(matchesSeen)")
    }

    @Test func overlongNamesNeverMatch() throws {
        let name = String(repeating: "a", count: Glob.nameLengthMax + 1)
        #expect(try !Glob("*").matches(name))
        #expect(try Glob("*").matches(String(repeating: "a", count: Glob.nameLengthMax)))
    }
}
