import TestSupport
import Testing

@testable import UnitFile

struct ValidNameCase: Sendable, CustomTestStringConvertible {
    let name: String
    let form: UnitName.Form
    let type: UnitType
    let prefix: String
    let instance: String?
    let template: String?
    var testDescription: String { name }
}

struct InvalidNameCase: Sendable, CustomTestStringConvertible {
    let name: String
    let expected: UnitNameError
    var testDescription: String { quoted(name) }
}

@Suite(.onBackgroundThreads) struct UnitNameTests {
    @Test(arguments: [
        ValidNameCase(name: "foo.service", form: .plain, type: .service, prefix: "foo", instance: nil, template: nil),
        ValidNameCase(name: "foo.bar.socket", form: .plain, type: .socket, prefix: "foo.bar", instance: nil, template: nil),
        ValidNameCase(name: "foo@.service", form: .template, type: .service, prefix: "foo", instance: nil, template: "foo@.service"),
        ValidNameCase(name: "foo@bar.service", form: .instance, type: .service, prefix: "foo", instance: "bar", template: "foo@.service"),
        ValidNameCase(name: "getty@tty1.service", form: .instance, type: .service, prefix: "getty", instance: "tty1", template: "getty@.service"),
        ValidNameCase(name: "a@b@c.timer", form: .instance, type: .timer, prefix: "a", instance: "b@c", template: "a@.timer"),
        ValidNameCase(name: "dev-disk-by\\x2duuid-1.device", form: .plain, type: .device, prefix: "dev-disk-by\\x2duuid-1", instance: nil, template: nil),
        ValidNameCase(name: "-.mount", form: .plain, type: .mount, prefix: "-", instance: nil, template: nil),
        ValidNameCase(name: "..service", form: .plain, type: .service, prefix: ".", instance: nil, template: nil),
        ValidNameCase(name: "x:y_z.slice", form: .plain, type: .slice, prefix: "x:y_z", instance: nil, template: nil),
    ])
    func validNamesSplitIntoTheirParts(_ testCase: ValidNameCase) throws {
        let name = try UnitName(testCase.name)
        #expect(name.rawValue == testCase.name)
        #expect(name.form == testCase.form)
        #expect(name.type == testCase.type)
        #expect(name.prefix == testCase.prefix)
        #expect(name.instance == testCase.instance)
        #expect(name.template?.rawValue == testCase.template)
    }

    @Test(arguments: [
        InvalidNameCase(name: "", expected: .empty),
        InvalidNameCase(name: "../x.service", expected: .containsSlash("../x.service")),
        InvalidNameCase(name: "a/b.service", expected: .containsSlash("a/b.service")),
        InvalidNameCase(name: "/etc/passwd.service", expected: .containsSlash("/etc/passwd.service")),
        InvalidNameCase(name: "a\u{0}.service", expected: .containsNUL("a\u{0}.service")),
        InvalidNameCase(name: "foo", expected: .missingTypeSuffix("foo")),
        InvalidNameCase(name: "..", expected: .unknownType("")),
        InvalidNameCase(name: ".service", expected: .emptyPrefix(".service")),
        InvalidNameCase(name: "@foo.service", expected: .emptyPrefix("@foo.service")),
        InvalidNameCase(name: "@.service", expected: .emptyPrefix("@.service")),
        InvalidNameCase(name: "foo.", expected: .unknownType("")),
        InvalidNameCase(name: "foo.exe", expected: .unknownType("exe")),
        InvalidNameCase(name: "foo.busname", expected: .unknownType("busname")),
        InvalidNameCase(name: "foo.Service", expected: .unknownType("Service")),
        InvalidNameCase(name: "foo bar.service", expected: .invalidCharacter(name: "foo bar.service", character: " ")),
        InvalidNameCase(name: "föö.service", expected: .invalidCharacter(name: "föö.service", character: "ö")),
        InvalidNameCase(name: "a%i.service", expected: .invalidCharacter(name: "a%i.service", character: "%")),
    ])
    func invalidNamesAreRefusedWithTheRuleTheyBreak(_ testCase: InvalidNameCase) {
        #expect(throws: testCase.expected) { try UnitName(testCase.name) }
    }

    @Test func lengthLimitIs255BytesIncludingSuffix() throws {
        let longest = String(repeating: "a", count: 255 - ".service".count) + ".service"
        #expect(try UnitName(longest).rawValue.utf8.count == 255)
        let tooLong = "a" + longest
        #expect(throws: UnitNameError.tooLong(lengthBytes: 256)) { try UnitName(tooLong) }
    }

    @Test func templateIsInstantiatedWithAnInstance() throws {
        let template = try UnitName("web@.service")
        let instance = try template.instantiated(with: "8080")
        #expect(instance.rawValue == "web@8080.service")
        #expect(instance.template == template)
        #expect(instance.nameWithoutSuffix == "web@8080")
        #expect(try template.instantiated(with: "a@b").instance == "a@b")
    }

    @Test func onlyTemplatesCanBeInstantiated() throws {
        #expect(throws: UnitNameError.notATemplate("web.service")) {
            try UnitName("web.service").instantiated(with: "1")
        }
        #expect(throws: UnitNameError.notATemplate("web@1.service")) {
            try UnitName("web@1.service").instantiated(with: "2")
        }
    }

    @Test(arguments: ["", "a b", "a/b", "ü"])
    func invalidInstancesAreRefused(_ instance: String) throws {
        let template = try UnitName("web@.service")
        #expect(throws: UnitNameError.invalidInstance(instance)) { try template.instantiated(with: instance) }
    }

    @Test func instantiationRespectsTheLengthLimit() throws {
        let template = try UnitName("web@.service")
        #expect(throws: UnitNameError.tooLong(lengthBytes: 256)) {
            try template.instantiated(with: String(repeating: "x", count: 256 - "web@.service".count))
        }
    }

    @Test func namesAreBuiltFromParts() throws {
        #expect(try UnitName(prefix: "db", type: .socket).rawValue == "db.socket")
        #expect(try UnitName(prefix: "db", instance: "3", type: .service).rawValue == "db@3.service")
        #expect(try UnitName.template(prefix: "db", type: .timer).rawValue == "db@.timer")
        #expect(throws: UnitNameError.invalidPrefix("a@b")) { try UnitName(prefix: "a@b", type: .service) }
        #expect(throws: UnitNameError.invalidPrefix("")) { try UnitName(prefix: "", type: .service) }
    }

    @Test func fleetSchedulesOnlyItsSevenTypes() throws {
        let schedulable = UnitType.allCases.filter(\.isSchedulableByFleet)
        #expect(Set(schedulable) == [.service, .socket, .device, .mount, .automount, .timer, .path])
        #expect(try UnitName("a.service").isSchedulableByFleet)
        #expect(try !UnitName("a.target").isSchedulableByFleet)
        #expect(try !UnitName("a.slice").isSchedulableByFleet)
        #expect(try UnitName("a@1.timer").isSchedulableByFleet)
        // A mount cannot be templated in systemd, so fleet could not schedule one either.
        #expect(try !UnitName("a@1.mount").isSchedulableByFleet)
    }

    @Test func errorsExplainWhyAPathIsRefused() {
        let message = UnitNameError.containsSlash("../x.service").description
        #expect(message.contains("'/'"))
        #expect(message.contains("never paths"))
    }
}
