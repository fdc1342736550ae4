import TestSupport
import Testing

@testable import UnitFile

/// One input and the assignments systemd would see in it.
struct ParseCase: Sendable, CustomTestStringConvertible {
    let behaviour: String
    let input: String
    let expected: [Assignment]

    var testDescription: String { behaviour }
}

/// One input and the error it must give.
struct ParseErrorCase: Sendable, CustomTestStringConvertible {
    let behaviour: String
    let input: String
    let expected: UnitFileError

    var testDescription: String { behaviour }
}

/// Rules from systemd.syntax(7) and conf-parser.c, each case named for the rule it checks.
let parseCases: [ParseCase] = [
    ParseCase(
        behaviour: "sections and options keep file order",
        input: "[Unit]\nDescription=d\nAfter=a.target\n[Service]\nExecStart=/bin/x\n",
        expected: [
            Assignment("Unit", "Description", "d"), Assignment("Unit", "After", "a.target"),
            Assignment("Service", "ExecStart", "/bin/x"),
        ]),
    ParseCase(
        behaviour: "hash and semicolon comment lines are skipped, also when indented",
        input: "# c\n; c\n[Unit]\n  # indented\n\t; tab\nA=1\n",
        expected: [Assignment("Unit", "A", "1")]),
    ParseCase(
        behaviour: "a comment mark after text is part of the value",
        input: "[S]\nA=1 # not a comment\n",
        expected: [Assignment("S", "A", "1 # not a comment")]),
    ParseCase(
        behaviour: "a trailing backslash joins the next line, replaced by a space",
        input: "[S]\nA=one \\\n  two\n",
        expected: [Assignment("S", "A", "one    two")]),
    ParseCase(
        behaviour: "a comment line inside a continuation is skipped",
        input: "[S]\nA=one\\\n# skipped\n; skipped too\n two\n",
        expected: [Assignment("S", "A", "one  two")]),
    ParseCase(
        behaviour: "an even run of backslashes does not continue the line",
        input: "[S]\nA=x\\\\\nB=y\n",
        expected: [Assignment("S", "A", "x\\\\"), Assignment("S", "B", "y")]),
    ParseCase(
        behaviour: "an odd run of backslashes continues the line",
        input: "[S]\nA=x\\\\\\\nB=y\n",
        expected: [Assignment("S", "A", "x\\\\ B=y")]),
    ParseCase(
        behaviour: "a blank line ends a continuation",
        input: "[S]\nA=x\\\n\nB=y\n",
        expected: [Assignment("S", "A", "x"), Assignment("S", "B", "y")]),
    ParseCase(
        behaviour: "the end of the file ends a continuation",
        input: "[S]\nA=x\\",
        expected: [Assignment("S", "A", "x")]),
    ParseCase(
        behaviour: "a continued line may look like a section header",
        input: "[S]\nA=x \\\n[T]\n",
        expected: [Assignment("S", "A", "x  [T]")]),
    ParseCase(
        behaviour: "whitespace around key and value is trimmed, inner whitespace kept",
        input: "[S]\n \t Key \t=\t value with  inner  spaces \t\n",
        expected: [Assignment("S", "Key", "value with  inner  spaces")]),
    ParseCase(
        behaviour: "repeated keys are all kept in order",
        input: "[S]\nA=1\nA=2\nA=1\n",
        expected: [Assignment("S", "A", "1"), Assignment("S", "A", "2"), Assignment("S", "A", "1")]),
    ParseCase(
        behaviour: "an empty assignment is kept with an empty value",
        input: "[S]\nA=1\nA=\nA=  \nA=2\n",
        expected: [
            Assignment("S", "A", "1"), Assignment("S", "A", ""), Assignment("S", "A", ""),
            Assignment("S", "A", "2"),
        ]),
    ParseCase(
        behaviour: "the first equals sign separates key from value",
        input: "[S]\nEnvironment=A=b=c\n",
        expected: [Assignment("S", "Environment", "A=b=c")]),
    ParseCase(
        behaviour: "keys may contain inner spaces",
        input: "[S]\nA B=1\n",
        expected: [Assignment("S", "A B", "1")]),
    ParseCase(
        behaviour: "a repeated section header merges into the first occurrence",
        input: "[A]\nx=1\n[B]\ny=2\n[A]\nz=3\n",
        expected: [Assignment("A", "x", "1"), Assignment("A", "z", "3"), Assignment("B", "y", "2")]),
    ParseCase(
        behaviour: "sections appear in the order of their first option",
        input: "[A]\n[B]\ny=2\n[A]\nz=3\n",
        expected: [Assignment("B", "y", "2"), Assignment("A", "z", "3")]),
    ParseCase(
        behaviour: "a section without options is dropped",
        input: "[A]\n[B]\ny=1\n[C]\n",
        expected: [Assignment("B", "y", "1")]),
    ParseCase(
        behaviour: "a section name is taken between the first and last bracket, spaces kept",
        input: "  [ My [odd] section ]  \nA=1\n",
        expected: [Assignment(" My [odd] section ", "A", "1")]),
    ParseCase(
        behaviour: "an empty section name is allowed as in systemd",
        input: "[]\nA=1\n",
        expected: [Assignment("", "A", "1")]),
    ParseCase(
        behaviour: "a byte order mark at the start is skipped",
        input: "\u{FEFF}[Unit]\nA=1\n",
        expected: [Assignment("Unit", "A", "1")]),
    ParseCase(
        behaviour: "a byte order mark is skipped on the first line that has one, as in systemd",
        input: "[Unit]\n\u{FEFF}A=1\n",
        expected: [Assignment("Unit", "A", "1")]),
    ParseCase(
        behaviour: "a byte order mark before a comment is skipped",
        input: "\u{FEFF}# comment\n[Unit]\nA=1\n",
        expected: [Assignment("Unit", "A", "1")]),
    ParseCase(
        behaviour: "CRLF line ends are accepted",
        input: "[S]\r\nA=1\r\nB=2\r\n",
        expected: [Assignment("S", "A", "1"), Assignment("S", "B", "2")]),
    ParseCase(
        behaviour: "a lone carriage return ends a line as in systemd",
        input: "[S]\rA=1\rB=2",
        expected: [Assignment("S", "A", "1"), Assignment("S", "B", "2")]),
    ParseCase(
        behaviour: "a NUL byte ends a line as in systemd",
        input: "[S]\u{0}A=1\u{0}\nB=2",
        expected: [Assignment("S", "A", "1"), Assignment("S", "B", "2")]),
    ParseCase(
        behaviour: "a CRLF continuation joins like an LF one",
        input: "[S]\r\nA=x\\\r\n y\r\n",
        expected: [Assignment("S", "A", "x  y")]),
    ParseCase(
        behaviour: "an empty file has no sections",
        input: "",
        expected: []),
    ParseCase(
        behaviour: "comments and blank lines alone give no sections",
        input: "\n# x\n\n  \n\t\n",
        expected: []),
    ParseCase(
        behaviour: "non-ASCII UTF-8 is kept",
        input: "[Ünït]\nDescription=Grüße ☃\n",
        expected: [Assignment("Ünït", "Description", "Grüße ☃")]),
    ParseCase(
        behaviour: "a value may end in a backslash when whitespace follows it",
        input: "[S]\nA=x\\ \nB=y\n",
        expected: [Assignment("S", "A", "x\\"), Assignment("S", "B", "y")]),
]

let parseErrorCases: [ParseErrorCase] = [
    ParseErrorCase(
        behaviour: "an assignment before any section is refused with its line",
        input: "# c\n\nA=1\n[S]\n", expected: .assignmentOutsideSection(line: 3)),
    ParseErrorCase(
        behaviour: "a line without equals sign is refused with its line",
        input: "[S]\nA=1\njunk\n", expected: .missingEquals(line: 3)),
    ParseErrorCase(
        behaviour: "an assignment without key is refused",
        input: "[S]\n  =1\n", expected: .missingKey(line: 2)),
    ParseErrorCase(
        behaviour: "a section header without closing bracket is refused",
        input: "[S]\nA=1\n[T\n", expected: .invalidSectionHeader(line: 3)),
    ParseErrorCase(
        behaviour: "text after a section header is refused",
        input: "[S] x\n", expected: .invalidSectionHeader(line: 1)),
    ParseErrorCase(
        behaviour: "a lone bracket is refused",
        input: "[\n", expected: .invalidSectionHeader(line: 1)),
    ParseErrorCase(
        behaviour: "a quote in a section name is refused",
        input: "[a\"b]\n", expected: .unsafeSectionName(line: 1, name: "a\"b")),
    ParseErrorCase(
        behaviour: "a backslash in a section name is refused",
        input: "[a\\b]\n", expected: .unsafeSectionName(line: 1, name: "a\\b")),
    ParseErrorCase(
        behaviour: "a control character in a section name is refused",
        input: "[a\u{1}b]\n", expected: .unsafeSectionName(line: 1, name: "a\u{1}b")),
    ParseErrorCase(
        behaviour: "a continued line reports the line it starts on",
        input: "[S]\nA=1\njunk \\\nmore\n", expected: .missingEquals(line: 3)),
    ParseErrorCase(
        behaviour: "a second byte order mark is refused",
        input: "\u{FEFF}[S]\n\u{FEFF}A=1\n", expected: .unexpectedByteOrderMark(line: 2)),
    ParseErrorCase(
        behaviour: "the obsolete include directive is a line without equals sign",
        input: "[S]\n.include /etc/x.service\n", expected: .missingEquals(line: 2)),
    ParseErrorCase(
        behaviour: "line numbers count CRLF as one line ending",
        input: "[S]\r\n\r\nA=1\r\nbad\r\n", expected: .missingEquals(line: 4)),
]

@Suite(.onBackgroundThreads) struct SyntaxTests {
    @Test(arguments: parseCases)
    func parsesAsSystemdDoes(_ testCase: ParseCase) throws {
        let file = try UnitFile(parsing: testCase.input)
        #expect(file.assignments == testCase.expected)
    }

    @Test(arguments: parseErrorCases)
    func refusesMalformedInputWithLineNumber(_ testCase: ParseErrorCase) {
        let error = parseError(testCase.input)
        #expect(error == testCase.expected)
        #expect(error?.line == testCase.expected.line)
    }

    @Test func invalidUTF8InAValueIsRefused() {
        let bytes = Array("[S]\nA=".utf8) + [0xFF, 0xFE] + Array("\n".utf8)
        #expect(parseError(bytes) == .invalidUTF8(line: 2))
    }

    @Test func invalidUTF8InACommentIsIgnored() throws {
        let bytes = Array("[S]\n# ".utf8) + [0xFF] + Array("\nA=1\n".utf8)
        let file = try UnitFile(parsing: bytes)
        #expect(file.assignments == [Assignment("S", "A", "1")])
    }

    @Test func errorMessagesNameTheLine() {
        let error = parseError("[S]\nnope\n")
        #expect(error?.description == "line 2: missing '=' (expected Key=Value, a [Section] header or a comment)")
    }

    @Test func continuedValueKeepsItsWrittenFormAsRawValue() throws {
        let file = try UnitFile(parsing: "[S]\nA=one \\\n  two\nB=plain\n")
        let options = file.sections[0].options
        #expect(options[0].value == "one    two")
        #expect(options[0].rawValue == "one \\\n  two")
        #expect(options[0].isContinued)
        #expect(options[1].rawValue == "plain")
        #expect(!options[1].isContinued)
    }

    @Test func valuesOfAKeyComeBackInOrder() throws {
        let file = try UnitFile(parsing: "[Service]\nEnvironment=A=1\nExecStart=/x\nEnvironment=\nEnvironment=B=2\n")
        #expect(file.values(of: "Environment", inSection: "Service") == ["A=1", "", "B=2"])
        #expect(file.values(of: "Nothing", inSection: "Service") == [])
        #expect(file.values(of: "Environment", inSection: "Missing") == [])
    }
}
