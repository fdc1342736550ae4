@testable import Daemon
import FleetAPI
import Membership
import Registry
import Testing

@Suite struct LeaderStateTests {
    func view(_ id: String, _ status: MemberStatus) throws -> MachineView {
        MachineView(id: try MachineID(id), publicIP: "10.0.0.1", peerPort: 7948, role: .agent, status: status, metadata: [:])
    }

    @Test func deadMachineStaysLiveForItsTTLThenDrops() throws {
        var liveness = MachineLiveness(agentTTLMilliseconds: 2_000)
        let alive = try view("a", .alive)
        #expect(liveness.liveIDs(machines: [alive, try view("b", .suspect)], nowMilliseconds: 0).map(\.rawValue) == ["a", "b"])
        // b is declared dead at t=1000: it keeps its units until t=3000.
        #expect(liveness.liveIDs(machines: [alive, try view("b", .dead)], nowMilliseconds: 1_000).count == 2)
        #expect(liveness.nextExpiryMilliseconds == 3_000)
        #expect(liveness.liveIDs(machines: [alive, try view("b", .dead)], nowMilliseconds: 2_999).count == 2)
        #expect(liveness.liveIDs(machines: [alive, try view("b", .dead)], nowMilliseconds: 3_000).map(\.rawValue) == ["a"])
        // Back alive: live again, and a later death starts a new grace.
        #expect(liveness.liveIDs(machines: [alive, try view("b", .alive)], nowMilliseconds: 4_000).count == 2)
        // A machine that left on shutdown is gone at once: nothing to wait for.
        #expect(liveness.liveIDs(machines: [alive, try view("b", .left)], nowMilliseconds: 5_000).count == 1)
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
