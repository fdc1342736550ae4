@testable import Daemon
import FleetAPI
import Membership
import Registry
import Scheduling
import UnitFile
import Testing

@Suite struct LeaderStateTests {
    func view(_ id: String, _ status: MemberStatus) throws -> MachineView {
        MachineView(id: try MachineID(id), publicIP: "10.0.0.1", peerPort: 7948, role: .agent, status: status, metadata: [:])
    }

    /// Gossip's verdict never moves units: a machine it calls dead keeps what is placed on it
    /// (until its lease is revoked, which unplaces them); new units go only to machines that
    /// are alive and renewing.
    @Test func schedulingKeepsUnitsOnSilentMachinesAndPlacesOnlyOnRenewingOnes() throws {
        var registry = RegistryState()
        let file = Array("[Service]\nExecStart=/bin/true\n".utf8)
        let unit = try UnitName("u.service")
        _ = registry.apply(RegistryCommand(.submitUnits([UnitSubmission(name: unit, file: file, hash: UnitHash(digestOf: file), targetState: .launched)])), at: 1)
        let gone = try MachineID("gone")
        _ = registry.apply(RegistryCommand(.assign([Assignment(unit: unit, machine: gone)])), at: 2)
        let renewing: Set<String> = ["a", "b"]
        let machines = MachineView.schedulingMachines(
            state: registry, views: [try view("a", .alive), try view("b", .dead), try view("c", .alive)],
            lastKnownMetadata: [gone: ["disk": "ssd"]], isRenewing: { renewing.contains($0.rawValue) })
        #expect(machines.map(\.id.rawValue) == ["a", "b", "c", "gone"])
        #expect(machines.map(\.acceptsNewUnits) == [true, false, false, false],
                "a: alive and renewing; b: renewing but dead to gossip; c: alive, not renewing; gone: not in membership at all")
        #expect(machines.last?.metadata == ["disk": "ssd"], "a machine out of sight keeps its last known metadata")
        let plan = Scheduler.plan(registry: registry, liveMachines: machines)
        #expect(plan.commands.isEmpty, "the unit stays on the machine gossip no longer shows: \(plan.commands)")
    }

    func state(_ name: String, _ machine: String, _ active: String) -> FleetUnitState {
        FleetUnitState(name: name, hash: "h", machineID: machine, systemdLoadState: "loaded", systemdActiveState: active,
                       systemdSubState: "running")
    }

    @Test func stateTableTakesResyncsAndChangesAndAsksForAResyncWhenItKnowsNothing() {
        let table = UnitStateTable()
        #expect(table.apply(StateReport(machineID: "m1", isResync: false, states: [state("a.service", "m1", "active")], gone: [])) == .needsResync)
        #expect(table.apply(StateReport(machineID: "m1", isResync: true, states: [state("a.service", "m1", "active"), state("b.service", "m1", "active")], gone: []))
                == .applied(changed: [state("a.service", "m1", "active"), state("b.service", "m1", "active")], gone: []))
        #expect(table.apply(StateReport(machineID: "m1", isResync: false, states: [state("a.service", "m1", "failed")], gone: ["b.service"]))
                == .applied(changed: [state("a.service", "m1", "failed")], gone: ["b.service"]))
        _ = table.apply(StateReport(machineID: "m0", isResync: true, states: [state("c.service", "m0", "active")], gone: []))
        #expect(table.states(machineID: nil, unitName: nil).map(\.name) == ["c.service", "a.service"])
        #expect(table.states(machineID: "m1", unitName: nil).map(\.systemdActiveState) == ["failed"])
        // A resync replaces the machine's whole picture: units it no longer lists are gone.
        #expect(table.apply(StateReport(machineID: "m1", isResync: true, states: [], gone: [])) == .applied(changed: [], gone: ["a.service"]))
        #expect(table.states(machineID: "m1", unitName: nil).isEmpty)
    }

    /// Issue 14: what agents report is bounded per machine and in machines, and states that are
    /// not a real unit's (a bad name, another machine's, huge fields) are not kept at all.
    @Test func stateTableBoundsWhatReportsMakeItHold() {
        let table = UnitStateTable(unitsPerMachineMax: 3, machinesMax: 2)
        func report(_ machine: String, _ names: [String], resync: Bool = false) -> StateReport {
            StateReport(machineID: machine, isResync: resync, states: names.map { state($0, machine, "active") }, gone: [])
        }
        _ = table.apply(report("m1", ["a.service", "b.service"], resync: true))
        _ = table.apply(report("m1", ["c.service", "d.service"]))
        _ = table.apply(report("m1", ["e.service"]))
        #expect(table.states(machineID: "m1", unitName: nil).map(\.name) == ["a.service", "b.service", "c.service"],
                "changes across reports stay within the per-machine bound")
        #expect(table.apply(report("m1", ["a.service"])) == .applied(changed: [], gone: []), "a known unit still updates")
        _ = table.apply(report("m2", ["a.service"], resync: true))
        guard case .refused = table.apply(report("m3", ["a.service"], resync: true)) else {
            Issue.record("a third machine was taken past machinesMax 2")
            return
        }
        guard case .refused = table.apply(report("not a machine id!", [], resync: true)) else {
            Issue.record("an invalid machine ID was taken")
            return
        }
        let long = String(repeating: "x", count: UnitStateTable.fieldBytesMax + 1)
        let odd = [FleetUnitState(name: "not a unit name", hash: "h", machineID: "m2", systemdLoadState: "loaded", systemdActiveState: "active", systemdSubState: "running"),
                   FleetUnitState(name: "b.service", hash: "h", machineID: "m1", systemdLoadState: "loaded", systemdActiveState: "active", systemdSubState: "running"),
                   FleetUnitState(name: "c.service", hash: long, machineID: "m2", systemdLoadState: "loaded", systemdActiveState: "active", systemdSubState: "running")]
        #expect(table.apply(StateReport(machineID: "m2", isResync: false, states: odd, gone: [])) == .applied(changed: [], gone: []))
        #expect(table.states(machineID: "m2", unitName: nil).map(\.name) == ["a.service"])
    }

    @Test func eventLogPagesAndTellsAWatcherThatFellBehind() async {
        let log = EventLog(eventsMax: 3, pageEventsMax: 2)
        log.append((1...5).map { (kind: .unit, subject: "u\($0)", unit: nil, state: nil, machine: nil) })
        let first = await log.page(afterIndex: 0, waitMilliseconds: 0)
        #expect(first.isTruncated, "events 1 and 2 were dropped")
        #expect(first.events.map(\.index) == [3, 4])
        let second = await log.page(afterIndex: 4, waitMilliseconds: 0)
        #expect(!second.isTruncated && second.events.map(\.subject) == ["u5"] && second.lastIndex == 5)
        // A long poll returns as soon as an event arrives.
        async let waiting = log.page(afterIndex: 5, waitMilliseconds: 60_000)
        try? await Task.sleep(for: .milliseconds(50))
        log.append([(kind: .machine, subject: "m", unit: nil, state: nil, machine: nil)])
        #expect(await waiting.events.map(\.subject) == ["m"])
    }

    @Test func notifierWaitEndsOnTimeoutWhenNothingChanges() async {
        let notifier = ChangeNotifier()
        await notifier.wait(timeoutMilliseconds: 20) { false }
        await notifier.wait(timeoutMilliseconds: 60_000) { true }
    }
}
