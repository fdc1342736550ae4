import TestSupport
import Testing

@testable import UnitFile

@Suite(.onBackgroundThreads) struct SerializerTests {
    @Test func canonicalFormHasGoSystemdLayout() throws {
        let file = try UnitFile(parsing: "[Unit]\nDescription=Foo\n[Service]\nExecStart=/bin/x\n[Unit]\nBindsTo=b.service\n")
        #expect(file.serialized() == "[Unit]\nDescription=Foo\nBindsTo=b.service\n\n[Service]\nExecStart=/bin/x\n")
    }

    @Test func emptyFileSerializesToNoBytes() throws {
        #expect(UnitFile.empty.serializedBytes() == [])
        #expect(try UnitFile(parsing: "# only a comment\n[Empty]\n").serializedBytes() == [])
    }

    @Test(arguments: parseCases)
    func parsingTheCanonicalFormGivesTheSameFile(_ testCase: ParseCase) throws {
        let file = try UnitFile(parsing: testCase.input)
        let reparsed = try UnitFile(parsing: file.serialized())
        #expect(reparsed == file)
        #expect(reparsed.serialized() == file.serialized())
    }

    @Test func continuedValueIsWrittenAsWritten() throws {
        let file = try UnitFile(parsing: "[S]\nA=one \\\n  # comment\n  two   \nB=x\n")
        #expect(file.serialized() == "[S]\nA=one \\\n  two\nB=x\n")
        #expect(file.sections[0].options[0].value == "one    two")
    }

    @Test func continuationEndedByBlankLineKeepsTrailingLineBreak() throws {
        let file = try UnitFile(parsing: "[S]\nA=x \\\n\nB=y\n")
        #expect(file.sections[0].options[0].rawValue == "x \\\n")
        #expect(file.serialized() == "[S]\nA=x \\\n\nB=y\n")
    }

    @Test func continuationEndedByEndOfFileIsWrittenAsIfALineBreakFollowed() throws {
        let withoutLineBreak = try UnitFile(parsing: "[S]\nA=x \\")
        let withLineBreak = try UnitFile(parsing: "[S]\nA=x \\\n")
        #expect(withoutLineBreak == withLineBreak)
        #expect(withLineBreak.serialized() == "[S]\nA=x \\\n\n")
        #expect(try UnitFile(parsing: withLineBreak.serialized()) == withLineBreak)
    }

    @Test func valueEndingInBackslashGetsAProtectingSpace() throws {
        let file = try UnitFile(parsing: "[S]\nA=x\\ \n[T]\nB=y\n")
        #expect(file.serialized() == "[S]\nA=x\\ \n\n[T]\nB=y\n")
        #expect(try UnitFile(parsing: file.serialized()) == file)
    }

    @Test func optionsBuiltInCodeRoundTrip() throws {
        let file = UnitFile(sections: [
            try UnitSection(name: "Unit", options: [try UnitOption(name: "Description", value: "Built")]),
            try UnitSection(name: "Service", options: [try UnitOption(name: "ExecStart", value: "/bin/a b\\")]),
            try UnitSection(name: "Unit", options: [try UnitOption(name: "After", value: "")]),
        ])
        #expect(file.sections.map(\.name) == ["Unit", "Service"])
        #expect(try UnitFile(parsing: file.serialized()) == file)
    }

    @Test(arguments: ["", " A", "A ", "#A", ";A", "[A", "A=B", "A\nB", "A\rB", "A\u{0}B", "\u{FEFF}A"])
    func optionNamesThatWouldNotReadBackAreRefused(_ name: String) {
        #expect(throws: UnitFileError.invalidOptionName(name)) {
            try UnitOption(name: name, value: "v")
        }
    }

    @Test(arguments: [" v", "v ", "\tv", "a\nb", "a\rb", "a\u{0}b"])
    func optionValuesThatWouldNotReadBackAreRefused(_ value: String) {
        #expect(throws: UnitFileError.invalidOptionValue(name: "A", value: value)) {
            try UnitOption(name: "A", value: value)
        }
    }

    @Test(arguments: ["a\"b", "a\\b", "a\nb", "a\u{7F}b", "a'b"])
    func unsafeSectionNamesAreRefused(_ name: String) {
        #expect(throws: UnitFileError.invalidSectionName(name)) {
            try UnitSection(name: name, options: [])
        }
    }
}
