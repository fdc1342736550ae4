import TestSupport
import Testing
import Registry
import UnitFile
@testable import Scheduling

@Suite(.onBackgroundThreads) struct HandoffGateTests {
    /// Destroyed and created again: the plan places the new unit while its old machine still
    /// stops the old one. The assignment waits, then goes through once the old machine reports
    /// the unit stopped.
    @Test func aUnitCreatedAgainWaitsUntilItsOldMachineHasStoppedIt() {
        var cluster = Cluster()
        cluster.machine("m1")
        cluster.machine("m2")
        cluster.submit("other.service")
        cluster.schedule()
        #expect(cluster.machineOf("other.service") == "m1")
        cluster.submit("web.service")
        let plan = Scheduler.plan(registry: cluster.registry, liveMachines: cluster.live, configuration: .standard)
        #expect(plan.commands == [RegistryCommand(.assign([Assignment(unit: name("web.service"), machine: machineID("m2"))]))])

        var gate = HandoffGate(holdMillisecondsMax: 10_000)
        let running = [name("web.service"): Set([machineID("m1")])]
        #expect(gate.filter(plan.commands, registry: cluster.registry, running: running, nowMilliseconds: 1_000).isEmpty)
        #expect(gate.held == [name("web.service")])
        // Still deactivating on m1 a moment later: still held, since the first hold.
        #expect(gate.filter(plan.commands, registry: cluster.registry, running: running, nowMilliseconds: 1_500).isEmpty)
        #expect(gate.heldSinceMilliseconds[name("web.service")] == 1_000)
        // m1 reports it inactive: through, and nothing is held any more.
        #expect(gate.filter(plan.commands, registry: cluster.registry, running: [:], nowMilliseconds: 2_000) == plan.commands)
        #expect(gate.held.isEmpty)
    }

    /// A unit moved off a machine that still runs it: the machine is first told to stop it
    /// (unassign), and the unit is placed on its new machine only once it has.
    @Test func aMoveUnassignsFirstAndAssignsOnceTheOldMachineHasStopped() {
        var cluster = Cluster()
        cluster.machine("m1")
        cluster.submit("web.service")
        cluster.schedule()
        #expect(cluster.machineOf("web.service") == "m1")
        cluster.live = []
        cluster.machine("m1", drained: true)
        cluster.machine("m2")
        let plan = Scheduler.plan(registry: cluster.registry, liveMachines: cluster.live, configuration: .standard)
        let assign = RegistryCommand(.assign([Assignment(unit: name("web.service"), machine: machineID("m2"))]))
        #expect(plan.commands == [assign])

        var gate = HandoffGate(holdMillisecondsMax: 10_000)
        let running = [name("web.service"): Set([machineID("m1")])]
        let first = gate.filter(plan.commands, registry: cluster.registry, running: running, nowMilliseconds: 0)
        #expect(first == [RegistryCommand(.unassign([name("web.service")]))])
        for command in first { cluster.apply(command.operation) }
        #expect(cluster.machineOf("web.service") == nil)

        // Planned again from the newer registry: the unit is unplaced, so the assignment waits
        // without a second unassignment.
        let second = Scheduler.plan(registry: cluster.registry, liveMachines: cluster.live, configuration: .standard)
        #expect(gate.filter(second.commands, registry: cluster.registry, running: running, nowMilliseconds: 300).isEmpty)
        #expect(gate.filter(second.commands, registry: cluster.registry, running: [:], nowMilliseconds: 600) == [assign])
    }

    /// A machine that reports the unit as running for ever (a wedged agent) cannot keep it from
    /// running anywhere: past the bound the assignment goes through. Units nobody else runs,
    /// and a report from the target machine itself, are never held.
    @Test func theHoldIsBoundedAndOnlyOtherMachinesHoldAUnit() {
        var cluster = Cluster()
        cluster.machine("m1")
        cluster.machine("m2")
        cluster.submit("a.service", ["MachineID=m2"])
        cluster.submit("b.service", ["MachineID=m2"])
        cluster.submit("c.service", ["MachineID=m2"])
        let plan = Scheduler.plan(registry: cluster.registry, liveMachines: cluster.live, configuration: .standard)
        #expect(plan.commands.count == 1)
        let running = [name("a.service"): Set([machineID("m1")]), name("b.service"): Set([machineID("m2")])]
        var gate = HandoffGate(holdMillisecondsMax: 5_000)
        let expectedPassing = RegistryCommand(.assign([Assignment(unit: name("b.service"), machine: machineID("m2")),
                                                       Assignment(unit: name("c.service"), machine: machineID("m2"))]))
        #expect(gate.filter(plan.commands, registry: cluster.registry, running: running, nowMilliseconds: 0) == [expectedPassing])
        #expect(gate.filter(plan.commands, registry: cluster.registry, running: running, nowMilliseconds: 4_999) == [expectedPassing])
        #expect(gate.filter(plan.commands, registry: cluster.registry, running: running, nowMilliseconds: 5_000) == plan.commands)
        #expect(gate.held.isEmpty)
    }

    /// Destroyed on m1 before m1 had reported it running, created again and pinned to m2: the
    /// gate knows m1 was given it until the destroy's version, so the assignment waits until m1
    /// says it acted on a schedule at least that new (chaos seed 5: 101 ms on two machines).
    @Test func aUnitThatLeftALiveMachineWaitsUntilThatMachineActedOnItsDeparture() {
        var cluster = Cluster()
        cluster.machine("m1")
        cluster.submit("web.service")
        cluster.schedule()
        var gate = HandoffGate(holdMillisecondsMax: 10_000)
        gate.noteChange(of: [], in: cluster.registry)  // seeds the placements
        cluster.apply(.destroyUnits([name("web.service")]))
        gate.noteChange(of: [name("web.service")], in: cluster.registry)
        let departedAt = cluster.registry.version
        #expect(gate.departures[name("web.service")] == HandoffGate.Departure(machine: machineID("m1"), version: departedAt))
        cluster.machine("m2")
        cluster.submit("web.service", ["MachineID=m2"])
        let plan = Scheduler.plan(registry: cluster.registry, liveMachines: cluster.live, configuration: .standard)
        #expect(plan.commands == [RegistryCommand(.assign([Assignment(unit: name("web.service"), machine: machineID("m2"))]))])
        let live: Set = [machineID("m1"), machineID("m2")]

        // Until m1 acknowledges anything it is taken for an agent without acknowledgements.
        #expect(gate.filter(plan.commands, registry: cluster.registry, running: [:], liveMachines: live, nowMilliseconds: 0) == plan.commands)
        // An acknowledgement of an older schedule settles nothing, and now m1 is waited for.
        let older = gate.acknowledge(machine: machineID("m1"), scheduleVersion: departedAt - 1)
        #expect(!older)
        #expect(gate.filter(plan.commands, registry: cluster.registry, running: [:], liveMachines: live, nowMilliseconds: 50).isEmpty)
        #expect(gate.filter(plan.commands, registry: cluster.registry, running: [:], liveMachines: live, nowMilliseconds: 100).isEmpty)
        let settled = gate.acknowledge(machine: machineID("m1"), scheduleVersion: departedAt)
        #expect(settled && gate.departures.isEmpty)
        #expect(gate.filter(plan.commands, registry: cluster.registry, running: [:], liveMachines: live, nowMilliseconds: 200) == plan.commands)
    }

    /// A machine that no longer renews its lease is not waited for (its lease ends its units),
    /// and a departure its machine had already acknowledged is not recorded.
    @Test func onlyLiveMachinesThatHaveNotActedAreWaitedFor() {
        var cluster = Cluster()
        cluster.machine("m1")
        cluster.submit("web.service")
        cluster.schedule()
        var gate = HandoffGate(holdMillisecondsMax: 10_000)
        gate.noteChange(of: [], in: cluster.registry)
        let acknowledgedBefore = gate.acknowledge(machine: machineID("m1"), scheduleVersion: 0)
        #expect(!acknowledgedBefore)
        cluster.apply(.destroyUnits([name("web.service")]))
        gate.noteChange(of: [name("web.service")], in: cluster.registry)
        cluster.machine("m2")
        cluster.submit("web.service", ["MachineID=m2"])
        let plan = Scheduler.plan(registry: cluster.registry, liveMachines: cluster.live, configuration: .standard)
        #expect(gate.filter(plan.commands, registry: cluster.registry, running: [:], liveMachines: [machineID("m1"), machineID("m2")],
                            nowMilliseconds: 0).isEmpty)
        #expect(gate.filter(plan.commands, registry: cluster.registry, running: [:], liveMachines: [machineID("m2")],
                            nowMilliseconds: 10) == plan.commands)

        var acknowledged = HandoffGate(holdMillisecondsMax: 10_000)
        acknowledged.noteChange(of: [], in: cluster.registry)
        let nothingDeparted = acknowledged.acknowledge(machine: machineID("m2"), scheduleVersion: cluster.registry.version + 5)
        #expect(!nothingDeparted)
        cluster.schedule()
        acknowledged.noteChange(of: [name("web.service")], in: cluster.registry)
        cluster.apply(.unassign([name("web.service")]))
        acknowledged.noteChange(of: [name("web.service")], in: cluster.registry)
        #expect(acknowledged.departures.isEmpty)
    }

    /// A unit moved off a live machine that never reported it (it may have started it a moment
    /// ago) is unassigned first, and placed once that machine has acted on the unassignment.
    @Test func aMoveOffAMachineThatHasNotReportedTheUnitStillUnassignsFirst() {
        var cluster = Cluster()
        cluster.machine("m1")
        cluster.submit("web.service")
        cluster.schedule()
        var gate = HandoffGate(holdMillisecondsMax: 10_000)
        gate.noteChange(of: [], in: cluster.registry)
        let acknowledgedBefore = gate.acknowledge(machine: machineID("m1"), scheduleVersion: cluster.registry.version)
        #expect(!acknowledgedBefore)
        cluster.live = []
        cluster.machine("m1", drained: true)
        cluster.machine("m2")
        let live: Set = [machineID("m1"), machineID("m2")]
        let plan = Scheduler.plan(registry: cluster.registry, liveMachines: cluster.live, configuration: .standard)
        let first = gate.filter(plan.commands, registry: cluster.registry, running: [:], liveMachines: live, nowMilliseconds: 0)
        #expect(first == [RegistryCommand(.unassign([name("web.service")]))])
        for command in first { cluster.apply(command.operation) }
        gate.noteChange(of: [name("web.service")], in: cluster.registry)
        let second = Scheduler.plan(registry: cluster.registry, liveMachines: cluster.live, configuration: .standard)
        #expect(gate.filter(second.commands, registry: cluster.registry, running: [:], liveMachines: live, nowMilliseconds: 50).isEmpty)
        let acted = gate.acknowledge(machine: machineID("m1"), scheduleVersion: cluster.registry.version)
        #expect(acted)
        #expect(gate.filter(second.commands, registry: cluster.registry, running: [:], liveMachines: live, nowMilliseconds: 100)
            == [RegistryCommand(.assign([Assignment(unit: name("web.service"), machine: machineID("m2"))]))])
    }

    /// The departures kept are bounded; the oldest goes first.
    @Test func departuresAreBounded() {
        var cluster = Cluster()
        cluster.machine("m1")
        for unit in ["a.service", "b.service", "c.service"] { cluster.submit(unit) }
        cluster.schedule()
        var gate = HandoffGate(holdMillisecondsMax: 10_000, departuresMax: 2)
        gate.noteChange(of: [], in: cluster.registry)
        for unit in ["a.service", "b.service", "c.service"] {
            cluster.apply(.destroyUnits([name(unit)]))
            gate.noteChange(of: [name(unit)], in: cluster.registry)
        }
        #expect(Set(gate.departures.keys) == [name("b.service"), name("c.service")])
    }

    @Test func onlyStatesInWhichProcessesMayRunCount() {
        for state in ["active", "activating", "deactivating", "reloading", "refreshing"] {
            #expect(HandoffGate.isRunning(activeState: state), "\(state)")
        }
        for state in ["inactive", "failed", "maintenance", ""] {
            #expect(!HandoffGate.isRunning(activeState: state), "\(state)")
        }
    }
}
