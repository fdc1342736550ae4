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
        #expect(table.apply(StateReport(machineID: "m1", isResync: false, states: [state("a", "m1", "active")], gone: [])) == .needsResync)
        #expect(table.apply(StateReport(machineID: "m1", isResync: true, states: [state("a", "m1", "active"), state("b", "m1", "active")], gone: []))
                == .applied(changed: [state("a", "m1", "active"), state("b", "m1", "active")], gone: []))
        #expect(table.apply(StateReport(machineID: "m1", isResync: false, states: [state("a", "m1", "failed")], gone: ["b"]))
                == .applied(changed: [state("a", "m1", "failed")], gone: ["b"]))
        _ = table.apply(StateReport(machineID: "m0", isResync: true, states: [state("c", "m0", "active")], gone: []))
        #expect(table.states(machineID: nil, unitName: nil).map(\.name) == ["c", "a"])
        #expect(table.states(machineID: "m1", unitName: nil).map(\.systemdActiveState) == ["failed"])
        // A resync replaces the machine's whole picture: units it no longer lists are gone.
        #expect(table.apply(StateReport(machineID: "m1", isResync: true, states: [], gone: [])) == .applied(changed: [], gone: ["a"]))
        #expect(table.states(machineID: "m1", unitName: nil).isEmpty)
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
