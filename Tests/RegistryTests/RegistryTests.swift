import TestSupport
import Testing
import UnitFile
@testable import Registry

func name(_ text: String) -> UnitName { try! UnitName(text) }
func machine(_ text: String) -> MachineID { try! MachineID(text) }
func submission(_ unit: String, _ fleet: String = "", target: TargetState = .launched) -> UnitSubmission {
    let text = "[Service]\nExecStart=/bin/true\n" + (fleet.isEmpty ? "" : "\n[X-Fleet]\n" + fleet + "\n")
    return UnitSubmission(name: name(unit), unitFile: try! UnitFile(parsing: text), targetState: target)
}

/// Applies operations at consecutive indexes after the state's version.
@discardableResult
func apply(_ state: inout RegistryState, _ operation: RegistryOperation, stamp: ClientStamp? = nil) -> RegistryResult {
    state.apply(RegistryCommand(operation, stamp: stamp), at: state.version + 1)
}

@Suite(.onBackgroundThreads) struct RegistryCommandTests {
    @Test func submittedUnitIsStoredWithItsHashAndTarget() {
        var state = RegistryState()
        let unit = submission("web.service")
        #expect(apply(&state, .submitUnits([unit])) == .applied(changedCount: 1))
        let record = state.units[name("web.service")]
        #expect(record?.hash == unit.hash)
        #expect(record?.targetState == .launched)
        #expect(record?.machine == nil)
        #expect(state.version == 1)
    }

    @Test func resubmittingTheSameUnitIsANoOpButAnotherFileIsRefused() {
        var state = RegistryState()
        apply(&state, .submitUnits([submission("web.service")]))
        #expect(apply(&state, .submitUnits([submission("web.service")])) == .applied(changedCount: 0))
        let other = submission("web.service", "Global=true")
        guard case .rejected(.unitExists) = apply(&state, .submitUnits([other])) else {
            Issue.record("expected unitExists")
            return
        }
    }

    /// `putUnit`, fleet's PUT decided at apply: one command, so no reader sees half of it and a
    /// write committed before it (a destroy) cannot make it answer as if the unit still existed.
    @Test func aPutCreatesOrUpdatesFileAndTargetInOneStep() {
        var state = RegistryState()
        let first = submission("web.service", target: .loaded)
        #expect(apply(&state, .putUnit(first, targetGiven: true)) == .applied(changedCount: 1))
        #expect(state.units[name("web.service")]?.targetState == .loaded)
        // File and target together: both change in the same version.
        let second = submission("web.service", "Global=false", target: .launched)
        let before = state.version
        #expect(apply(&state, .putUnit(second, targetGiven: true)) == .applied(changedCount: 2))
        #expect(state.version == before + 1)
        #expect(state.units[name("web.service")]?.hash == second.hash)
        #expect(state.units[name("web.service")]?.targetState == .launched)
        // A new file alone keeps the target; a target alone keeps the file.
        #expect(apply(&state, .putUnit(submission("web.service", target: .inactive), targetGiven: false)) == .applied(changedCount: 1))
        #expect(state.units[name("web.service")]?.targetState == .launched)
        var targetOnly = UnitSubmission(name: name("web.service"), file: nil, hash: nil, targetState: .inactive)
        #expect(apply(&state, .putUnit(targetOnly, targetGiven: true)) == .applied(changedCount: 1))
        #expect(state.units[name("web.service")]?.hash == first.hash)
        #expect(state.units[name("web.service")]?.targetState == .inactive)
        // Destroyed meanwhile: a put with a file creates it again (without a target: inactive),
        // one without a file is refused and changes nothing.
        apply(&state, .destroyUnits([name("web.service")]))
        targetOnly.targetState = .launched
        #expect(apply(&state, .putUnit(targetOnly, targetGiven: true)) == .rejected(.unitFileMissing("web.service")))
        #expect(state.units.isEmpty)
        #expect(apply(&state, .putUnit(second, targetGiven: false)) == .applied(changedCount: 1))
        #expect(state.units[name("web.service")]?.targetState == .inactive)
    }

    /// Contrib/chaos, seed 6: a target change reached a leader as it froze, was retried on the
    /// next leader (applied), a create followed, and the first copy, forwarded when the old
    /// leader thawed, set the old target again. With the write's one key on both copies, the
    /// late copy is answered from the first one's result and changes nothing.
    @Test func aLateCopyOfAStampedPutChangesNothing() {
        var state = RegistryState()
        apply(&state, .putUnit(submission("web.service", target: .launched), targetGiven: true))
        let key = ClientStamp(clientID: 0xfeed, sequence: 1)
        let stop = UnitSubmission(name: name("web.service"), file: nil, hash: nil, targetState: .inactive)
        let first = apply(&state, .putUnit(stop, targetGiven: true), stamp: key)
        #expect(first == .applied(changedCount: 1))
        let recreate = submission("web.service", "Global=false", target: .loaded)
        #expect(apply(&state, .putUnit(recreate, targetGiven: true), stamp: ClientStamp(clientID: 0xbeef, sequence: 1)) == .applied(changedCount: 2))
        let version = state.version
        #expect(apply(&state, .putUnit(stop, targetGiven: true), stamp: key) == first)
        #expect(state.units[name("web.service")]?.targetState == .loaded)
        #expect(state.units[name("web.service")]?.hash == recreate.hash)
        #expect(state.version == version + 1, "the copy takes a version, as every entry does, and changes nothing else")
    }

    @Test func aRefusedPutChangesNothing() {
        var state = RegistryState()
        let template = submission("web@.service", target: .inactive)
        apply(&state, .putUnit(template, targetGiven: true))
        let snapshot = state
        // A new file for the template with an active target: refused before the file changes.
        let launched = submission("web@.service", "Global=false", target: .launched)
        #expect(apply(&state, .putUnit(launched, targetGiven: true)) == .rejected(.templateCannotBeLaunched("web@.service")))
        #expect(state.templates == snapshot.templates)
        // An instance of it without a file is created from the template.
        let instance = UnitSubmission(name: name("web@1.service"), file: nil, hash: nil, targetState: .launched)
        #expect(apply(&state, .putUnit(instance, targetGiven: true)) == .applied(changedCount: 1))
        #expect(state.units[name("web@1.service")]?.hash == template.hash)
    }

    /// Invalid submissions, each rejected with its own reason and without changing the units.
    enum InvalidSubmission: String, CaseIterable, Sendable {
        case hashOfAnotherFile, nonCanonicalFile, globalWithReplaces, machineOfSelf, launchedTemplate,
             instanceWithoutTemplate, unparsableFile, unknownUnitType

        var invalidSubmission: UnitSubmission {
            func raw(_ unit: String, _ text: String) -> UnitSubmission {
                UnitSubmission(name: name(unit), file: Array(text.utf8), hash: UnitHash(digestOf: Array(text.utf8)),
                               targetState: .launched)
            }
            switch self {
            case .hashOfAnotherFile:
                var unit = submission("a.service")
                unit.hash = submission("b.service", "Global=true").hash
                return unit
            case .nonCanonicalFile: return raw("a.service", "[Service]\nExecStart = x\n")
            case .globalWithReplaces: return submission("a.service", "Global=true\nReplaces=b*")
            case .machineOfSelf: return submission("a.service", "MachineOf=a.service")
            case .launchedTemplate: return submission("a@.service")
            case .instanceWithoutTemplate:
                return UnitSubmission(name: name("a@1.service"), file: nil, hash: nil, targetState: .launched)
            case .unparsableFile: return raw("a.service", "garbage")
            case .unknownUnitType: return submission("a.slice")
            }
        }

        func matches(_ result: RegistryResult) -> Bool {
            switch (self, result) {
            case (.hashOfAnotherFile, .rejected(.hashMismatch)), (.nonCanonicalFile, .rejected(.unitFileNotCanonical)),
                 (.globalWithReplaces, .rejected(.invalidFleetOptions)), (.machineOfSelf, .rejected(.invalidFleetOptions)),
                 (.launchedTemplate, .rejected(.templateCannotBeLaunched)),
                 (.instanceWithoutTemplate, .rejected(.templateNotFound)), (.unparsableFile, .rejected(.invalidUnitFile)),
                 (.unknownUnitType, .rejected(.notSchedulable)):
                return true
            default:
                return false
            }
        }
    }

    @Test(arguments: InvalidSubmission.allCases)
    func invalidSubmissionIsRejected(_ invalid: InvalidSubmission) {
        var state = RegistryState()
        let result = apply(&state, .submitUnits([invalid.invalidSubmission]))
        #expect(invalid.matches(result), "\(invalid): \(result)")
        #expect(state.units.isEmpty)
        #expect(state.version == 1)
    }

    @Test func instanceWithoutFileTakesItsTemplatesFileAndOptions() {
        var state = RegistryState()
        apply(&state, .submitUnits([submission("app@.service", "MachineOf=db@%i.service", target: .inactive)]))
        let instance = UnitSubmission(name: name("app@1.service"), file: nil, hash: nil, targetState: .launched)
        #expect(apply(&state, .submitUnits([instance])) == .applied(changedCount: 1))
        #expect(state.templates.count == 1)
        #expect(state.units[name("app@1.service")]?.options.machineOf == [name("db@1.service")])
    }

    @Test func aBatchWithOneInvalidElementChangesNothing() {
        var state = RegistryState()
        apply(&state, .submitUnits([submission("a.service")]))
        let before = state.units
        let result = apply(&state, .assign([
            Assignment(unit: name("a.service"), machine: machine("m1")),
            Assignment(unit: name("missing.service"), machine: machine("m1")),
        ]))
        #expect(result == .rejected(.unitNotFound("missing.service")))
        #expect(state.units == before)
    }

    @Test func batchesAreBoundedAndFreeOfDuplicates() {
        var state = RegistryState(limits: RegistryLimits(
            unitsMax: 100, machinesMax: 10, batchCountMax: 2, clientSessionsMax: 2,
            unitFileSizeMax: 4096, metadataEntriesMax: 4, metadataLengthMax: 16))
        #expect(apply(&state, .destroyUnits([])) == .rejected(.emptyBatch))
        #expect(apply(&state, .unassign([name("a.service"), name("b.service"), name("c.service")]))
            == .rejected(.batchTooLarge(count: 3, limit: 2)))
        #expect(apply(&state, .submitUnits([submission("a.service"), submission("a.service")]))
            == .rejected(.duplicateInBatch("a.service")))
    }

    @Test func unitAndMachineCountsAreBounded() {
        var state = RegistryState(limits: RegistryLimits(
            unitsMax: 2, machinesMax: 1, batchCountMax: 10, clientSessionsMax: 2,
            unitFileSizeMax: 64, metadataEntriesMax: 1, metadataLengthMax: 8))
        #expect(apply(&state, .submitUnits([submission("a.service"), submission("b.service"), submission("c.service")]))
            == .rejected(.tooManyUnits(limit: 2)))
        guard case .rejected(.unitFileTooLarge) = apply(&state, .submitUnits([submission("a.service", "MachineMetadata=region=europe-west")])) else {
            Issue.record("a file over unitFileSizeMax must be refused")
            return
        }
        #expect(apply(&state, .drainMachine(machine("m1"))) == .applied(changedCount: 1))
        #expect(apply(&state, .drainMachine(machine("m2"))) == .rejected(.tooManyMachines(limit: 1)))
        #expect(apply(&state, .setMachineMetadata(machine("m1"), [MetadataEntry(key: "region", value: "europe-west")]))
            == .rejected(.invalidMetadata(key: "region", value: "europe-west")))
        #expect(apply(&state, .setMachineMetadata(machine("m1"), [MetadataEntry(key: "a", value: "1"), MetadataEntry(key: "b", value: "2")]))
            == .rejected(.tooManyMetadataEntries(count: 2, limit: 1)))
    }

    @Test func aSnapshotLargerThanTheLimitsIsRefused() {
        var big = RegistryState()
        apply(&big, .submitUnits([submission("a.service"), submission("b.service"), submission("c.service")]))
        var small = RegistryState(limits: RegistryLimits(
            unitsMax: 2, machinesMax: 1, batchCountMax: 10, clientSessionsMax: 2,
            unitFileSizeMax: 4096, metadataEntriesMax: 1, metadataLengthMax: 8))
        #expect(throws: RegistrySnapshotError.countTooLarge(what: "units", count: 3, limit: 2)) {
            try small.restore(from: big.snapshot())
        }
    }

    @Test func globalUnitsAndDrainedMachinesCannotBeAssigned() {
        var state = RegistryState()
        apply(&state, .submitUnits([submission("g.service", "Global=true"), submission("a.service")]))
        #expect(apply(&state, .assign([Assignment(unit: name("g.service"), machine: machine("m1"))]))
            == .rejected(.globalUnitCannotBeAssigned("g.service")))
        apply(&state, .drainMachine(machine("m1")))
        #expect(apply(&state, .assign([Assignment(unit: name("a.service"), machine: machine("m1"))]))
            == .rejected(.machineDrained("m1")))
        apply(&state, .undrainMachine(machine("m1")))
        #expect(apply(&state, .assign([Assignment(unit: name("a.service"), machine: machine("m1"))]))
            == .applied(changedCount: 1))
        #expect(state.units[name("a.service")]?.machine == machine("m1"))
    }

    @Test func replacingAFileKeepsTargetAndPlacement() {
        var state = RegistryState()
        apply(&state, .submitUnits([submission("a.service")]))
        apply(&state, .assign([Assignment(unit: name("a.service"), machine: machine("m1"))]))
        let replacement = submission("a.service", "MachineMetadata=disk=ssd")
        #expect(apply(&state, .replaceUnitFiles([replacement])) == .applied(changedCount: 1))
        let record = state.units[name("a.service")]
        #expect(record?.hash == replacement.hash)
        #expect(record?.machine == machine("m1"))
        #expect(record?.targetState == .launched)
        #expect(apply(&state, .replaceUnitFiles([submission("b.service")])) == .rejected(.unitNotFound("b.service")))
    }

    @Test func targetStatesDestroyAndTemplatesStayInactive() {
        var state = RegistryState()
        apply(&state, .submitUnits([submission("a.service"), submission("t@.service", target: .inactive)]))
        #expect(apply(&state, .setTargetState([name("a.service")], .loaded)) == .applied(changedCount: 1))
        #expect(apply(&state, .setTargetState([name("t@.service")], .launched)) == .rejected(.templateCannotBeLaunched("t@.service")))
        #expect(apply(&state, .destroyUnits([name("a.service"), name("t@.service")])) == .applied(changedCount: 2))
        #expect(state.units.isEmpty && state.templates.isEmpty)
    }

    @Test func machineMetadataIsSortedAndValidated() {
        var state = RegistryState()
        let entries = [MetadataEntry(key: "region", value: "us"), MetadataEntry(key: "disk", value: "ssd")]
        #expect(apply(&state, .setMachineMetadata(machine("m1"), entries)) == .applied(changedCount: 1))
        #expect(state.machines[machine("m1")]?.metadata.map(\.key) == ["disk", "region"])
        #expect(apply(&state, .setMachineMetadata(machine("m1"), entries.reversed())) == .applied(changedCount: 0))
        #expect(apply(&state, .setMachineMetadata(machine("m1"), [MetadataEntry(key: "a=b", value: "c")]))
            == .rejected(.invalidMetadata(key: "a=b", value: "c")))
        #expect(apply(&state, .setMachineMetadata(machine("m1"), [
            MetadataEntry(key: "a", value: "1"), MetadataEntry(key: "a", value: "2")])) == .rejected(.invalidMetadata(key: "a", value: "2")))
        #expect(throws: RegistryRejection.self) { try MachineID("bad/id") }
        #expect(throws: RegistryRejection.self) { try MachineID("") }
    }
}

@Suite(.onBackgroundThreads) struct RegistryIdempotenceTests {
    @Test func aRetriedCommandGetsItsOriginalResultWithoutApplyingAgain() {
        var state = RegistryState()
        let stamp = ClientStamp(clientID: 7, sequence: 1)
        #expect(apply(&state, .submitUnits([submission("a.service")]), stamp: stamp) == .applied(changedCount: 1))
        apply(&state, .destroyUnits([name("a.service")]))
        // The retry, committed again after a leader change, must not resurrect the destroyed unit.
        #expect(apply(&state, .submitUnits([submission("a.service")]), stamp: stamp) == .applied(changedCount: 1))
        #expect(state.units.isEmpty)
        #expect(state.version == 3)
    }

    @Test func aRetriedRejectionIsRejectedAgainAndOlderSequencesAreStale() {
        var state = RegistryState()
        let first = apply(&state, .destroyUnits([name("a.service")]), stamp: ClientStamp(clientID: 1, sequence: 5))
        #expect(first == .rejected(.unitNotFound("a.service")))
        apply(&state, .submitUnits([submission("a.service")]))
        #expect(apply(&state, .destroyUnits([name("a.service")]), stamp: ClientStamp(clientID: 1, sequence: 5)) == first)
        #expect(apply(&state, .destroyUnits([name("a.service")]), stamp: ClientStamp(clientID: 1, sequence: 4))
            == .rejected(.staleSequence(clientID: 1, sequence: 4, lastSequence: 5)))
        #expect(state.units.count == 1)
    }

    @Test func theSessionTableForgetsTheClientWithTheOldestCommand() {
        var state = RegistryState(limits: RegistryLimits(
            unitsMax: 100, machinesMax: 10, batchCountMax: 10, clientSessionsMax: 2,
            unitFileSizeMax: 4096, metadataEntriesMax: 4, metadataLengthMax: 16))
        for client in [UInt64(3), 1, 2] {
            apply(&state, .drainMachine(machine("m\(client)")), stamp: ClientStamp(clientID: client, sequence: 1))
        }
        #expect(state.sessions.keys.sorted() == [1, 2])
    }

    @Test func theGossipKeyringIsReplacedWholeAndOnlyByAValidRing() {
        var state = RegistryState()
        let first = [UInt8](repeating: 1, count: 32), second = [UInt8](repeating: 2, count: 32)
        #expect(state.gossipKeyring == nil)
        #expect(state.apply(RegistryCommand(.setGossipKeyring([first, second])), at: 1) == .applied(changedCount: 1))
        #expect(state.gossipKeyring?.keys == [first, second])
        #expect(state.apply(RegistryCommand(.setGossipKeyring([first, second])), at: 2) == .applied(changedCount: 0))
        let invalid: [[[UInt8]]] = [[], (0..<9).map { [UInt8](repeating: $0, count: 32) }, [[UInt8](repeating: 1, count: 31)], [first, first]]
        for (offset, keys) in invalid.enumerated() {
            guard case .rejected(.invalidGossipKeyring) = state.apply(RegistryCommand(.setGossipKeyring(keys)), at: UInt64(3 + offset)) else {
                Issue.record("accepted \(keys.map(\.count))")
                continue
            }
        }
        #expect(state.gossipKeyring?.keys == [first, second], "a rejected ring changes nothing")
    }

    @Test func aclTokensAreBootstrappedOnceCreatedAndDeleted() {
        var state = RegistryState()
        func token(_ accessor: String, _ byte: UInt8, _ policies: [String] = ["management"]) -> ACLTokenRecord {
            ACLTokenRecord(accessorID: accessor, secretHash: [UInt8](repeating: byte, count: 32), name: accessor, policies: policies)
        }
        #expect(state.apply(RegistryCommand(.createACLToken(token("root", 1), bootstrap: true)), at: 1) == .applied(changedCount: 1))
        #expect(state.apply(RegistryCommand(.createACLToken(token("again", 2), bootstrap: true)), at: 2) == .rejected(.aclAlreadyBootstrapped))
        #expect(state.apply(RegistryCommand(.createACLToken(token("reader", 3, ["read"]), bootstrap: false)), at: 3) == .applied(changedCount: 1))
        #expect(state.aclToken(secretHash: [UInt8](repeating: 3, count: 32))?.accessorID == "reader")
        // The same accessor or the same secret twice, a hash of the wrong size, no policy: refused.
        for (offset, bad) in [token("reader", 9), token("other", 3), ACLTokenRecord(accessorID: "x", secretHash: [1], name: "", policies: ["read"]),
                              token("none", 8, [])].enumerated() {
            guard case .rejected(.invalidACLToken) = state.apply(RegistryCommand(.createACLToken(bad, bootstrap: false)), at: UInt64(4 + offset)) else {
                Issue.record("accepted \(bad)")
                continue
            }
        }
        #expect(state.apply(RegistryCommand(.deleteACLToken(accessorID: "reader")), at: 10) == .applied(changedCount: 1))
        #expect(state.apply(RegistryCommand(.deleteACLToken(accessorID: "reader")), at: 11) == .rejected(.aclTokenNotFound("reader")))
        #expect(state.aclTokens.keys.sorted() == ["root"])
    }

    @Test func noSpaceAlarmsAreRaisedAndClearedIdempotentlyAndBounded() {
        var state = RegistryState()
        #expect(state.apply(RegistryCommand(.setNoSpaceAlarm(machine("m2"), raised: true)), at: 1) == .applied(changedCount: 1))
        #expect(state.apply(RegistryCommand(.setNoSpaceAlarm(machine("m2"), raised: true)), at: 2) == .applied(changedCount: 0))
        #expect(state.noSpaceAlarms == [machine("m2")])
        #expect(state.apply(RegistryCommand(.setNoSpaceAlarm(machine("m9"), raised: false)), at: 3) == .applied(changedCount: 0))
        #expect(state.apply(RegistryCommand(.setNoSpaceAlarm(machine("m2"), raised: false)), at: 4) == .applied(changedCount: 1))
        #expect(state.noSpaceAlarms.isEmpty)
        var index: UInt64 = 5
        for number in 0..<RegistryState.noSpaceAlarmsMax {
            #expect(state.apply(RegistryCommand(.setNoSpaceAlarm(machine("v\(number)"), raised: true)), at: index) == .applied(changedCount: 1))
            index += 1
        }
        #expect(state.apply(RegistryCommand(.setNoSpaceAlarm(machine("one-too-many"), raised: true)), at: index)
            == .rejected(.tooManyMachines(limit: RegistryState.noSpaceAlarmsMax)))
        #expect(state.apply(RegistryCommand(.setNoSpaceAlarm(machine("v0"), raised: true)), at: index + 1) == .applied(changedCount: 0),
                "an alarm already raised is no new one")
        #expect(state.noSpaceAlarms.count == RegistryState.noSpaceAlarmsMax)
    }

    @Test func unitFileBytesCountEveryStoredFileAndName() {
        var state = RegistryState()
        #expect(state.unitFileBytes == 0)
        apply(&state, .submitUnits([submission("a.service", "Global=true"), submission("t@.service", "MachineOf=a.service", target: .inactive)]))
        apply(&state, .submitUnits([UnitSubmission(name: name("t@1.service"), file: nil, hash: nil, targetState: .loaded)]))
        let expected = state.units.values.map { $0.file.count + $0.name.rawValue.utf8.count }.reduce(0, +)
            + state.templates.values.map { $0.file.count + $0.name.rawValue.utf8.count }.reduce(0, +)
        #expect(state.units.count == 2 && state.templates.count == 1)
        #expect(state.unitFileBytes == expected && expected > 0)
        apply(&state, .destroyUnits([name("a.service"), name("t@.service"), name("t@1.service")]))
        #expect(state.unitFileBytes == 0)
    }

    @Test func anIndexAtOrBeforeTheVersionIsRefused() {
        var state = RegistryState()
        _ = state.apply(RegistryCommand(.drainMachine(machine("m1"))), at: 5)
        #expect(state.apply(RegistryCommand(.undrainMachine(machine("m1"))), at: 5)
            == .rejected(.indexNotAfterVersion(index: 5, version: 5)))
        #expect(state.machines[machine("m1")]?.isDrained == true)
    }
}

@Suite(.onBackgroundThreads) struct RegistrySnapshotTests {
    static func populated() -> RegistryState {
        var state = RegistryState()
        apply(&state, .submitUnits([
            submission("web.service", "MachineMetadata=disk=ssd"), submission("g.service", "Global=true"),
            submission("app@.service", "Conflicts=app@*.service", target: .inactive),
        ]))
        apply(&state, .submitUnits([UnitSubmission(name: name("app@1.service"), file: nil, hash: nil, targetState: .loaded)]))
        apply(&state, .assign([Assignment(unit: name("web.service"), machine: machine("m2"))]))
        apply(&state, .setMachineMetadata(machine("m2"), [MetadataEntry(key: "disk", value: "ssd")]))
        apply(&state, .drainMachine(machine("m1")))
        apply(&state, .destroyUnits([name("nope.service")]), stamp: ClientStamp(clientID: 9, sequence: 3))
        apply(&state, .unassign([name("web.service")]), stamp: ClientStamp(clientID: 4, sequence: 1))
        apply(&state, .setGossipKeyring([[UInt8](repeating: 7, count: 32), [UInt8](repeating: 8, count: 32)]))
        apply(&state, .createACLToken(ACLTokenRecord(accessorID: "b", secretHash: [UInt8](repeating: 2, count: 32), name: "ops",
                                                     policies: ["operator", "units:web-*"]), bootstrap: true))
        apply(&state, .createACLToken(ACLTokenRecord(accessorID: "a", secretHash: [UInt8](repeating: 1, count: 32), name: "",
                                                     policies: ["read"]), bootstrap: false))
        apply(&state, .setNoSpaceAlarm(machine("m3"), raised: true))
        apply(&state, .setNoSpaceAlarm(machine("m1"), raised: true))
        return state
    }

    /// A format 5 snapshot (before alarms) is the same bytes without the alarm count; it
    /// restores with none raised.
    @Test func aFormat5SnapshotRestoresWithoutAlarms() throws {
        var state = RegistryState()
        apply(&state, .drainMachine(machine("m1")))
        var bytes = state.snapshot()
        #expect(bytes.suffix(4) == [0, 0, 0, 0], "no alarm")
        bytes.removeLast(4)
        bytes[4] = 5
        var restored = RegistryState()
        try restored.restore(from: bytes)
        #expect(restored == state && restored.noSpaceAlarms.isEmpty)
    }

    /// A format 3 snapshot (before the replicated keyring) is the same bytes without the
    /// keyring's presence byte; it restores with no keyring.
    @Test func aFormat3SnapshotRestoresWithoutAKeyring() throws {
        var state = RegistryState()
        apply(&state, .drainMachine(machine("m1")))
        var bytes = state.snapshot()
        #expect(bytes.suffix(9) == [0, 0, 0, 0, 0, 0, 0, 0, 0], "no keyring, no token, no alarm")
        bytes.removeLast(9)
        bytes[4] = 3
        var restored = RegistryState()
        try restored.restore(from: bytes)
        #expect(restored == state && restored.gossipKeyring == nil)
    }

    @Test func snapshotRoundTripsByteForByte() throws {
        let state = Self.populated()
        let bytes = state.snapshot()
        var restored = RegistryState()
        try restored.restore(from: bytes)
        #expect(restored == state)
        #expect(restored.snapshot() == bytes)
    }

    @Test func equalStatesBuiltInOneProcessGiveEqualSnapshots() {
        #expect(Self.populated().snapshot() == Self.populated().snapshot())
    }

    @Test func garbageIsRejectedWithTypedErrorsAndLeavesTheStateUnchanged() {
        let bytes = Self.populated().snapshot()
        var state = RegistryState()
        apply(&state, .drainMachine(machine("keep")))
        let before = state
        #expect(throws: RegistrySnapshotError.badMagic) { try state.restore(from: Array("NOPE".utf8) + bytes.dropFirst(4)) }
        var wrongVersion = bytes
        wrongVersion[4] = 9
        #expect(throws: RegistrySnapshotError.unsupportedFormatVersion(9)) { try state.restore(from: wrongVersion) }
        #expect(throws: RegistrySnapshotError.trailingBytes(count: 1)) { try state.restore(from: bytes + [0]) }
        // Every truncation fails, and so does flipping any byte to something the format forbids
        // or to a value that no longer hashes, sorts or parses; none may crash.
        for length in 0..<bytes.count {
            #expect(throws: RegistrySnapshotError.self) { try state.restore(from: Array(bytes.prefix(length))) }
        }
        var generator = SplitMix64(seed: 42)
        for _ in 0..<500 {
            var damaged = bytes
            let position = Int(generator.next() % UInt64(bytes.count))
            damaged[position] ^= UInt8(truncatingIfNeeded: generator.next() | 1)
            var scratch = RegistryState()
            _ = try? scratch.restore(from: damaged)
        }
        #expect(state == before)
    }
}
