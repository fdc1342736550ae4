import TestSupport
import Testing

@testable import UnitFile

/// Reads `xFleet` as the body of an `[X-Fleet]` section of a small service.
func fleetOptions(_ xFleet: String, unitName: String = "web@1.service") throws -> FleetOptions {
    let file = try UnitFile(parsing: "[Service]\nExecStart=/bin/web\n\n[X-Fleet]\n" + xFleet + "\n")
    return try FleetOptions(unitFile: file, unitName: try UnitName(unitName))
}

func fleetOptionsError(_ xFleet: String, unitName: String = "web@1.service") -> FleetOptionsError? {
    do {
        _ = try fleetOptions(xFleet, unitName: unitName)
        return nil
    } catch let error as FleetOptionsError {
        return error
    } catch {
        Issue.record("unexpected error \(error)")
        return nil
    }
}

struct IncompatibleCase: Sendable, CustomTestStringConvertible {
    let xFleet: String
    let first: FleetOptionName
    let second: FleetOptionName
    var testDescription: String { "\(first.rawValue) with \(second.rawValue)" }
}

@Suite(.onBackgroundThreads) struct FleetOptionsTests {
    @Test func unitWithoutXFleetSectionIsUnconstrained() throws {
        let file = try UnitFile(parsing: "[Service]\nExecStart=/bin/x\n")
        #expect(try FleetOptions(unitFile: file, unitName: UnitName("x.service")) == .unconstrained)
    }

    @Test(arguments: ["MachineID", "X-ConditionMachineID", "X-ConditionMachineBootID"])
    func machineIDIsReadInEverySpelling(_ key: String) throws {
        #expect(try fleetOptions("\(key)=0123abcd").machineID == "0123abcd")
    }

    @Test func repeatingTheSameMachineIDIsAccepted() throws {
        #expect(try fleetOptions("MachineID=abc\nX-ConditionMachineID=abc").machineID == "abc")
    }

    @Test func differentMachineIDsAreRefused() {
        #expect(fleetOptionsError("MachineID=abc\nX-ConditionMachineID=def") == .conflictingMachineIDs(["abc", "def"]))
        #expect(fleetOptionsError("MachineID=\"abc\" \"def\"") == .conflictingMachineIDs(["abc", "def"]))
    }

    /// Each pattern costs every scheduling decision on the unit's machine a match: at most 64.
    @Test func conflictsAndReplacesTakeAtMost64PatternsEach() throws {
        let limit = FleetOptions.patternsMax
        let many = (0...limit).map { "other-\($0).service" }
        #expect(fleetOptionsError("Conflicts=" + many.joined(separator: " ")) == .tooManyPatterns(key: "Conflicts", count: limit + 1, limit: limit))
        #expect(fleetOptionsError(many.map { "Replaces=\($0)" }.joined(separator: "\n"))
            == .tooManyPatterns(key: "Replaces", count: limit + 1, limit: limit))
        #expect(try fleetOptions("Conflicts=" + many.prefix(limit).joined(separator: " ")).conflicts.count == limit)
        // Repeats are one pattern.
        #expect(try fleetOptions("Conflicts=" + Array(repeating: "same.service", count: 2 * limit).joined(separator: " ")).conflicts.count == 1)
    }

    @Test func machineOfIsRepeatableInBothSpellingsWithoutRepeats() throws {
        let options = try fleetOptions("MachineOf=db.service\nX-ConditionMachineOf=cache.service\nMachineOf=db.service")
        #expect(options.machineOf.map(\.rawValue) == ["db.service", "cache.service"])
    }

    @Test func machineOfMustNameAUnit() {
        #expect(
            fleetOptionsError("MachineOf=not a unit")
                == .invalidUnitName(key: "MachineOf", value: "not", reason: .missingTypeSuffix("not")))
        #expect(
            fleetOptionsError("X-ConditionMachineOf=../x.service")
                == .invalidUnitName(key: "X-ConditionMachineOf", value: "../x.service", reason: .containsSlash("../x.service")))
    }

    @Test(arguments: [
        ("MachineMetadata=region=us-east-1", [MachineMetadataRequirement(key: "region", allowedValues: ["us-east-1"])]),
        ("MachineMetadata=\"region=us-east-1\" \"diskType=SSD\"", [
            MachineMetadataRequirement(key: "diskType", allowedValues: ["SSD"]),
            MachineMetadataRequirement(key: "region", allowedValues: ["us-east-1"]),
        ]),
        ("MachineMetadata=region=us-east-1 diskType=SSD", [
            MachineMetadataRequirement(key: "diskType", allowedValues: ["SSD"]),
            MachineMetadataRequirement(key: "region", allowedValues: ["us-east-1"]),
        ]),
        ("MachineMetadata=region=us-east-1\nMachineMetadata=region=us-west-1\nX-ConditionMachineMetadata=region=us-east-1", [
            MachineMetadataRequirement(key: "region", allowedValues: ["us-east-1", "us-west-1"])
        ]),
        ("MachineMetadata=\"role=web server\"", [MachineMetadataRequirement(key: "role", allowedValues: ["web server"])]),
        ("MachineMetadata=instance=%i", [MachineMetadataRequirement(key: "instance", allowedValues: ["1"])]),
    ])
    func machineMetadataIsReadAsFleetDocumented(_ xFleet: String, _ expected: [MachineMetadataRequirement]) throws {
        #expect(try fleetOptions(xFleet).machineMetadata == expected)
    }

    @Test(arguments: ["a", "a=", "=b", "a=b=c", "ram>=", ">=4", "ram<", "disk!="])
    func malformedMachineMetadataIsRefused(_ pair: String) {
        #expect(fleetOptionsError("MachineMetadata=\(pair)") == .invalidMachineMetadata(key: "MachineMetadata", value: pair))
    }

    /// fleet 1.0 splits at the first comparison operator and keeps it on the value.
    @Test func comparisonsKeepTheirOperatorOnTheValue() throws {
        let file = try UnitFile(parsing: "[X-Fleet]\nMachineMetadata=ram>=1024 ram<8192 disk!=hdd zone==a\n")
        let options = try FleetOptions(unitFile: file, unitName: UnitName("a.service"))
        #expect(options.machineMetadata == [
            MachineMetadataRequirement(key: "disk", allowedValues: ["!=hdd"]),
            MachineMetadataRequirement(key: "ram", allowedValues: [">=1024", "<8192"]),
            MachineMetadataRequirement(key: "zone", allowedValues: ["==a"]),
        ])
    }

    @Test func repeatedMetadataKeysAreAlternativesAndDifferentKeysAreAllRequired() throws {
        let options = try fleetOptions("MachineMetadata=region=east\nMachineMetadata=region=west disk=ssd")
        #expect(options.isSatisfied(byMachineMetadata: ["region": "west", "disk": "ssd", "extra": "1"]))
        #expect(options.isSatisfied(byMachineMetadata: ["region": "east", "disk": "ssd"]))
        #expect(!options.isSatisfied(byMachineMetadata: ["region": "north", "disk": "ssd"]))
        #expect(!options.isSatisfied(byMachineMetadata: ["region": "east"]))
        #expect(FleetOptions.unconstrained.isSatisfied(byMachineMetadata: [:]))
    }

    @Test func conflictsAreGlobsRepeatableAndWhitespaceSeparated() throws {
        let options = try fleetOptions("Conflicts=web@*.service cache*\nX-Conflicts=db.service\nConflicts=\"other?.service\"")
        #expect(options.conflicts.map(\.pattern) == ["web@*.service", "cache*", "db.service", "other?.service"])
        #expect(options.conflicts[0].matches("web@2.service"))
    }

    @Test func replacesAreGlobs() throws {
        let options = try fleetOptions("Replaces=old-web@*.service")
        #expect(options.replaces.map(\.pattern) == ["old-web@*.service"])
        #expect(options.replaces[0].matches("old-web@1.service"))
    }

    @Test func malformedGlobsAreRefused() {
        #expect(fleetOptionsError("Conflicts=web[") == .invalidPattern(key: "Conflicts", pattern: "web[", reason: .unterminatedClass))
        // A trailing space keeps the backslash from continuing the line.
        #expect(fleetOptionsError("Replaces=a\\ ") == .invalidPattern(key: "Replaces", pattern: "a\\", reason: .danglingEscape))
    }

    @Test(arguments: [
        ("Global=true", true), ("Global=YES", true), ("Global=1", true), ("Global=on", true), ("Global=t", true),
        ("Global=false", false), ("Global=No", false), ("Global=0", false), ("Global=off", false),
        ("Global=f", false), ("Global=n", false), ("Global=true\nGlobal=false", false),
        ("Global=false\nGlobal=true", true),
    ])
    func globalTakesTheLastBoolean(_ xFleet: String, _ expected: Bool) throws {
        #expect(try fleetOptions(xFleet).isGlobal == expected)
    }

    @Test(arguments: ["y", "maybe", "2"])
    func ambiguousOrUnknownBooleansAreRefused(_ value: String) {
        #expect(fleetOptionsError("Global=\(value)") == .invalidBoolean(key: "Global", value: value))
    }

    @Test func emptyAssignmentResetsAnOption() throws {
        let options = try fleetOptions("Conflicts=a*\nX-Conflicts=\nConflicts=b*\nMachineID=abc\nMachineID=\nGlobal=true\nGlobal=")
        #expect(options.conflicts.map(\.pattern) == ["b*"])
        #expect(options.machineID == nil)
        #expect(!options.isGlobal)
    }

    @Test func specifiersAreExpandedWithTheScheduledUnitsName() throws {
        let options = try fleetOptions("MachineOf=%p.socket\nMachineMetadata=unit=%N", unitName: "web@7.service")
        #expect(options.machineOf.map(\.rawValue) == ["web.socket"])
        #expect(options.machineMetadata == [MachineMetadataRequirement(key: "unit", allowedValues: ["web@7"])])
        let conflicts = try fleetOptions("Conflicts=%p@*.service", unitName: "web@7.service")
        #expect(conflicts.conflicts.map(\.pattern) == ["web@*.service"])
    }

    @Test(arguments: ["Weight=10", "machineid=abc", "X-Fleet-Unknown=1", "ConditionMachineID=abc"])
    func unknownOptionsAreRefused(_ line: String) {
        let key = String(line.prefix { $0 != "=" })
        #expect(fleetOptionsError(line) == .unknownOption(key: key))
    }

    @Test func unterminatedQuotesAndEmptyWordsAreRefused() {
        #expect(fleetOptionsError("MachineMetadata=\"a=b") == .unterminatedQuote(key: "MachineMetadata"))
        #expect(fleetOptionsError("Conflicts=\"\"") == .emptyValue(key: "Conflicts"))
        #expect(fleetOptionsError("MachineOf=%i", unitName: "web.service") == .emptyValue(key: "MachineOf"))
    }

    @Test func overlongValuesAreRefused() {
        let value = String(repeating: "a", count: FleetOptions.valueLengthMax + 1)
        #expect(fleetOptionsError("MachineID=\(value)") == .valueTooLong(key: "MachineID", limitBytes: FleetOptions.valueLengthMax))
        let expanding = String(repeating: "%n", count: 400)
        #expect(fleetOptionsError("MachineID=\(expanding)") == .valueTooLong(key: "MachineID", limitBytes: FleetOptions.valueLengthMax))
    }

    @Test(arguments: [
        IncompatibleCase(xFleet: "MachineID=abc\nMachineOf=db.service", first: .machineID, second: .machineOf),
        IncompatibleCase(xFleet: "MachineID=abc\nConflicts=x*", first: .machineID, second: .conflicts),
        IncompatibleCase(xFleet: "MachineID=abc\nGlobal=true", first: .machineID, second: .global),
        IncompatibleCase(xFleet: "MachineID=abc\nReplaces=old.service", first: .machineID, second: .replaces),
        IncompatibleCase(xFleet: "Global=true\nMachineOf=db.service", first: .global, second: .machineOf),
        IncompatibleCase(xFleet: "Global=true\nReplaces=old.service", first: .global, second: .replaces),
        IncompatibleCase(xFleet: "Conflicts=x*\nReplaces=old.service", first: .conflicts, second: .replaces),
        IncompatibleCase(
            xFleet: "X-ConditionMachineID=abc\nX-ConditionMachineOf=db.service", first: .machineID, second: .machineOf),
        IncompatibleCase(xFleet: "X-ConditionMachineBootID=abc\nX-Conflicts=x*", first: .machineID, second: .conflicts),
    ])
    func combinationsFleetRefusedAreRefusedNamingBothOptions(_ testCase: IncompatibleCase) {
        let error = fleetOptionsError(testCase.xFleet)
        #expect(error == .incompatibleOptions(testCase.first, testCase.second))
        #expect(error?.description == "\(testCase.first.rawValue) cannot be used with \(testCase.second.rawValue)")
    }

    @Test func combinationsFleetAllowedAreAccepted() throws {
        let global = try fleetOptions("Global=true\nMachineMetadata=role=edge")
        #expect(global.isGlobal)
        #expect(try fleetOptions("Global=false\nMachineID=abc").machineID == "abc")
        #expect(try fleetOptions("MachineOf=db.service\nConflicts=web@*.service").conflicts.count == 1)
        #expect(try fleetOptions("MachineOf=db.service\nReplaces=old.service").replaces.count == 1)
        #expect(try fleetOptions("MachineID=abc\nMachineMetadata=a=b").machineID == "abc")
        // fleet 1.0's TestScheduleGlobalConflicts submits exactly this (its fixture conflict-global.N).
        let globalConflicting = try fleetOptions("Global=true\nConflicts=conflict-global.*.service")
        #expect(globalConflicting.isGlobal && globalConflicting.conflicts.map(\.pattern) == ["conflict-global.*.service"])
    }

    @Test func peerMatchingOwnConflictOrReplaceIsUnresolvable() throws {
        #expect(
            fleetOptionsError("MachineOf=db.service\nConflicts=d*")
                == .unresolvableRequirement(peer: try UnitName("db.service"), option: .conflicts, pattern: "d*"))
        #expect(
            fleetOptionsError("MachineOf=db.service\nReplaces=db.*")
                == .unresolvableRequirement(peer: try UnitName("db.service"), option: .replaces, pattern: "db.*"))
    }

    @Test func peerThatIsTheUnitItselfIsRefused() throws {
        #expect(fleetOptionsError("MachineOf=%n") == .peerIsSelf(try UnitName("web@1.service")))
    }

    @Test func optionNamesMapFromEverySpelling() {
        #expect(FleetOptionName(key: "X-ConditionMachineMetadata") == .machineMetadata)
        #expect(FleetOptionName(key: "X-Conflicts") == .conflicts)
        #expect(FleetOptionName(key: "Global") == .global)
        #expect(FleetOptionName(key: "X-Global") == nil)
    }
}
