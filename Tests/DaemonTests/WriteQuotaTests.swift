@testable import Daemon
import TestSupport
import HTTPAPI
import Registry
import Testing
import UnitFile

/// Issue 14 item 3: the leader refuses, with 507, the writes that would pass an operator's quota
/// or that add data while a voter's NOSPACE alarm is raised; everything else goes on.
@Suite(.onBackgroundThreads) struct WriteQuotaTests {
    static func unit(_ name: String, bytes: Int = 0) -> UnitSubmission {
        let padding = bytes > 0 ? "Description=" + String(repeating: "x", count: bytes) + "\n" : ""
        let file = try! UnitFile(parsing: "[Unit]\n" + padding + "[Service]\nExecStart=/bin/true\n")
        return UnitSubmission(name: try! UnitName(name), unitFile: file, targetState: .launched)
    }

    static func state(_ submissions: [UnitSubmission]) -> RegistryState {
        var state = RegistryState()
        #expect(state.apply(RegistryCommand(.submitUnits(submissions)), at: 1) == .applied(changedCount: submissions.count))
        return state
    }

    @Test func theUnitCountQuotaRefusesNewUnitsOnly() throws {
        let quota = WriteQuota(unitsMax: 2, unitFileBytesMax: 1 << 20, registryBytesMax: 1 << 30)
        let state = Self.state([Self.unit("a.service"), Self.unit("b.service")])
        let refusal = try #require(quota.refusal(of: .submitUnits([Self.unit("c.service")]), in: state))
        #expect(refusal.reason == .quota && refusal.error.status == 507)
        #expect(refusal.error.message.contains("max_units is 2"))
        #expect(quota.refusal(of: .submitUnits([Self.unit("a.service")]), in: state) == nil, "resubmitting a unit adds none")
        #expect(quota.refusal(of: .replaceUnitFiles([Self.unit("a.service", bytes: 10)]), in: state) == nil)
        #expect(quota.refusal(of: .destroyUnits([try UnitName("a.service")]), in: state) == nil)
        #expect(quota.refusal(of: .setTargetState([try UnitName("a.service")], .inactive), in: state) == nil)
    }

    @Test func theFileSizeQuotaRefusesALargerFile() throws {
        let quota = WriteQuota(unitsMax: 100, unitFileBytesMax: 1_000, registryBytesMax: 1 << 30)
        let state = RegistryState()
        let refusal = try #require(quota.refusal(of: .submitUnits([Self.unit("big.service", bytes: 1_000)]), in: state))
        #expect(refusal.error.status == 507 && refusal.error.message.contains("max_unit_file_bytes is 1000"))
        #expect(quota.refusal(of: .submitUnits([Self.unit("small.service", bytes: 100)]), in: state) == nil)
    }

    @Test func theRegistryBytesQuotaCountsWhatAWriteAddsAndWhatAReplacementFrees() throws {
        let one = Self.unit("a.service", bytes: 500)
        let state = Self.state([one])
        let used = state.unitFileBytes
        let exact = Self.unit("b.service", bytes: 100)
        let added = exact.file!.count + "b.service".utf8.count
        let fits = WriteQuota(unitsMax: 100, unitFileBytesMax: 1 << 20, registryBytesMax: used + added)
        #expect(fits.refusal(of: .submitUnits([exact]), in: state) == nil, "exactly at the quota fits")
        let short = WriteQuota(unitsMax: 100, unitFileBytesMax: 1 << 20, registryBytesMax: used + added - 1)
        let refusal = try #require(short.refusal(of: .submitUnits([exact]), in: state))
        #expect(refusal.reason == .quota && refusal.error.message.contains("max_registry_bytes is \(used + added - 1)"))
        // A registry over its quota (the quota was lowered) still takes a replacement that shrinks.
        let lowered = WriteQuota(unitsMax: 100, unitFileBytesMax: 1 << 20, registryBytesMax: 10)
        #expect(lowered.refusal(of: .replaceUnitFiles([Self.unit("a.service", bytes: 10)]), in: state) == nil)
        #expect(lowered.refusal(of: .replaceUnitFiles([Self.unit("a.service", bytes: 600)]), in: state) != nil)
    }

    @Test func anInstanceOfAStoredTemplateCountsTheTemplatesFile() throws {
        var state = RegistryState()
        let template = UnitSubmission(name: try UnitName("t@.service"), unitFile: try UnitFile(parsing: "[Service]\nExecStart=/bin/true\n"), targetState: .inactive)
        #expect(state.apply(RegistryCommand(.submitUnits([template])), at: 1) == .applied(changedCount: 1))
        let instance = UnitSubmission(name: try UnitName("t@1.service"), file: nil, hash: nil, targetState: .launched)
        let quota = WriteQuota(unitsMax: 100, unitFileBytesMax: template.file!.count - 1, registryBytesMax: 1 << 30)
        #expect(quota.refusal(of: .submitUnits([instance]), in: state)?.error.message.contains("max_unit_file_bytes") == true)
    }

    @Test func aRaisedAlarmRefusesWritesThatAddDataAndLetsTheRestThrough() throws {
        var state = Self.state([Self.unit("a.service")])
        #expect(state.apply(RegistryCommand(.setNoSpaceAlarm(try MachineID("m2"), raised: true)), at: 2) == .applied(changedCount: 1))
        let quota = WriteQuota(unitsMax: 100, unitFileBytesMax: 1 << 20, registryBytesMax: 1 << 30)
        let machine = try MachineID("m1")
        for refused: RegistryOperation in [
            .submitUnits([Self.unit("b.service")]), .replaceUnitFiles([Self.unit("a.service", bytes: 5)]),
            .setMachineMetadata(machine, [MetadataEntry(key: "k", value: "v")]),
            .createACLToken(ACLTokenRecord(accessorID: "x", secretHash: [UInt8](repeating: 1, count: 32), name: "", policies: ["read"]), bootstrap: false),
        ] {
            let refusal = try #require(quota.refusal(of: refused, in: state), "\(refused) went through")
            #expect(refusal.reason == .noSpace && refusal.error.status == 507)
            #expect(refusal.error.message.hasPrefix("NOSPACE alarm: the data directory of m2"))
        }
        let name = try UnitName("a.service")
        for allowed: RegistryOperation in [
            .destroyUnits([name]), .setTargetState([name], .inactive), .setTargetState([name], .launched), .drainMachine(machine),
            .undrainMachine(machine), .deleteACLToken(accessorID: "x"), .setGossipKeyring([[UInt8](repeating: 2, count: 32)]),
        ] {
            #expect(quota.refusal(of: allowed, in: state) == nil, "\(allowed) was refused")
        }
    }
}

@Suite(.onBackgroundThreads) struct NoSpaceAlarmTests {
    @Test func theAlarmRisesBelowTheReserveAndClearsOnlyAtFiveQuartersOfIt() {
        var alarm = NoSpaceAlarmState(reserveBytes: 4_000)
        alarm.observe(freeBytes: 4_000)
        #expect(!alarm.isRaised, "at the reserve: not yet")
        alarm.observe(freeBytes: 3_999)
        #expect(alarm.isRaised)
        alarm.observe(freeBytes: 4_999)
        #expect(alarm.isRaised, "back over the reserve but under 5/4 of it: still raised")
        alarm.observe(freeBytes: 5_000)
        #expect(!alarm.isRaised)
        var never = NoSpaceAlarmState(reserveBytes: 0)
        never.observe(freeBytes: 0)
        #expect(!never.isRaised, "a reserve of 0 turns the alarm off")
    }

    @Test func freeBytesReadsTheFileSystemAndNothingForAMissingPath() throws {
        let free = try #require(NoSpaceAlarmState.freeBytes(at: "/tmp"))
        #expect(free > 0)
        #expect(NoSpaceAlarmState.freeBytes(at: "/no/such/directory/here") == nil)
    }

    @Test func theLeaderChangesOnlyWhatTheReportsContradict() throws {
        let (m1, m2, m3, gone) = (try MachineID("m1"), try MachineID("m2"), try MachineID("m3"), try MachineID("gone"))
        let voters: Set = [m1, m2, m3]
        let changes = NoSpaceAlarms.changes(raised: [m2, gone], observed: [m1: true, m2: true, m3: false], voters: voters)
        #expect(changes.map(\.machine) == [gone, m1])
        #expect(changes.map(\.raised) == [false, true])
        // A voter that did not answer keeps its alarm.
        #expect(NoSpaceAlarms.changes(raised: [m2], observed: [m1: false], voters: voters).isEmpty)
        #expect(NoSpaceAlarms.changes(raised: [m2], observed: [m2: false], voters: voters).map(\.raised) == [false])
    }
}
