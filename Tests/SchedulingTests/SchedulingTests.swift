import TestSupport
import Testing
import UnitFile
import Registry
@testable import Scheduling

func name(_ text: String) -> UnitName { try! UnitName(text) }
func machineID(_ text: String) -> MachineID { try! MachineID(text) }

/// A registry under construction, commands applied at consecutive indexes.
struct Cluster {
    var registry = RegistryState()
    var live: [LiveMachine] = []

    mutating func apply(_ operation: RegistryOperation) {
        let result = registry.apply(RegistryCommand(operation), at: registry.version + 1)
        guard case .applied = result else { fatalError("\(operation) was rejected: \(result)") }
    }

    mutating func submit(_ unit: String, _ fleet: [String] = [], target: TargetState = .launched) {
        let text = "[Service]\nExecStart=/bin/true\n" + (fleet.isEmpty ? "" : "\n[X-Fleet]\n" + fleet.joined(separator: "\n") + "\n")
        let file = try! UnitFile(parsing: text)
        apply(.submitUnits([UnitSubmission(name: name(unit), unitFile: file, targetState: target)]))
    }

    mutating func machine(_ id: String, _ metadata: [String: String] = [:], drained: Bool = false, unitsMax: Int = .max) {
        live.append(LiveMachine(id: machineID(id), metadata: metadata, isDrained: drained, unitsMax: unitsMax))
    }

    /// Plans and applies the plan; returns it.
    @discardableResult
    mutating func schedule(_ configuration: SchedulerConfiguration = .standard) -> SchedulingPlan {
        let plan = Scheduler.plan(registry: registry, liveMachines: live, configuration: configuration)
        for command in plan.commands { apply(command.operation) }
        return plan
    }

    func machineOf(_ unit: String) -> String? { registry.units[name(unit)]?.machine?.rawValue }
}

@Suite(.onBackgroundThreads) struct PlacementRuleTests {
    struct Case: Sendable, CustomTestStringConvertible {
        let label: String
        let machines: [(String, [String: String])]
        let units: [(String, [String])]
        /// Expected machine per unit; nil: unscheduled.
        let expected: [String: String?]
        var testDescription: String { label }
    }

    static let cases: [Case] = [
        Case(label: "least loaded, ties by machine id", machines: [("m2", [:]), ("m1", [:])],
             units: [("a.service", []), ("b.service", []), ("c.service", [])],
             expected: ["a.service": "m1", "b.service": "m2", "c.service": "m1"]),
        Case(label: "MachineID pins; an absent machine leaves it unscheduled", machines: [("m1", [:]), ("m2", [:])],
             units: [("a.service", ["MachineID=m2"]), ("b.service", ["MachineID=m9"])],
             expected: ["a.service": "m2", "b.service": nil]),
        Case(label: "metadata: AND across keys, OR across values",
             machines: [("m1", ["region": "eu", "disk": "hdd"]), ("m2", ["region": "us", "disk": "ssd"]), ("m3", ["region": "ap", "disk": "ssd"])],
             units: [("a.service", ["MachineMetadata=region=eu", "MachineMetadata=region=us", "MachineMetadata=disk=ssd"]),
                     ("b.service", ["MachineMetadata=region=sa"])],
             expected: ["a.service": "m2", "b.service": nil]),
        Case(label: "metadata operators != >= <=",
             machines: [("m1", ["ram": "2048", "disk": "hdd"]), ("m2", ["ram": "8192", "disk": "hdd"]), ("m3", ["ram": "8192", "disk": "ssd"])],
             units: [("a.service", ["MachineMetadata=ram>=4096", "MachineMetadata=disk!=hdd"]),
                     ("b.service", ["MachineMetadata=ram<=4096"]), ("c.service", ["MachineMetadata=ram>=lots"])],
             expected: ["a.service": "m3", "b.service": "m1", "c.service": nil]),
        Case(label: "strict metadata operators > < and text == (fleet 1.0's forms)",
             machines: [("m1", ["ram": "4096"]), ("m2", ["ram": "8192"]), ("m3", ["ram": "x"])],
             units: [("a.service", ["MachineMetadata=ram>4096"]), ("b.service", ["MachineMetadata=ram<8192"]),
                     ("c.service", ["MachineMetadata=ram>8192"]), ("d.service", ["MachineMetadata=ram==x"])],
             expected: ["a.service": "m2", "b.service": "m1", "c.service": nil, "d.service": "m3"]),
        Case(label: "MachineOf chains follow their peers", machines: [("m1", [:]), ("m2", [:])],
             units: [("z.service", []), ("y.service", ["MachineOf=z.service"]), ("x.service", ["MachineOf=y.service"]),
                     ("w.service", ["MachineOf=nothere.service"])],
             expected: ["z.service": "m1", "y.service": "m1", "x.service": "m1", "w.service": nil]),
        Case(label: "Conflicts in both directions", machines: [("m1", [:]), ("m2", [:])],
             units: [("a.service", ["Conflicts=b*"]), ("b1.service", []), ("b2.service", []), ("c.service", ["Conflicts=a.service"])],
             expected: ["a.service": "m1", "b1.service": "m2", "b2.service": "m2", "c.service": "m2"]),
        Case(label: "Conflicts against a global unit", machines: [("m1", ["role": "edge"]), ("m2", [:])],
             units: [("proxy.service", ["Global=true", "MachineMetadata=role=edge"]), ("a.service", ["Conflicts=proxy.service"])],
             expected: ["a.service": "m2"]),
        Case(label: "Replaces pushes the replaced unit off its machine", machines: [("m1", ["zone": "a"]), ("m2", ["zone": "b"])],
             units: [("b.service", []), ("n.service", ["Replaces=b.service", "MachineMetadata=zone=a"])],
             expected: ["b.service": "m2", "n.service": "m1"]),
        Case(label: "Conflicts glob starting with a wildcard", machines: [("m1", [:]), ("m2", [:])],
             units: [("a-db.service", []), ("b-db.service", ["Conflicts=*-db.service"]), ("c-db.service", ["Conflicts=*-db.service"])],
             expected: ["a-db.service": "m1", "b-db.service": "m2", "c-db.service": nil]),
        Case(label: "global units are never assigned", machines: [("m1", [:])],
             units: [("g.service", ["Global=true"])], expected: ["g.service": nil]),
        Case(label: "template instances are separate units", machines: [("m1", [:]), ("m2", [:])],
             units: [("web@1.service", ["Conflicts=web@*.service"]), ("web@2.service", ["Conflicts=web@*.service"]),
                     ("web@3.service", ["Conflicts=web@*.service"])],
             expected: ["web@1.service": "m1", "web@2.service": "m2", "web@3.service": nil]),
    ]

    @Test(arguments: cases)
    func placementFollowsFleetsRules(_ testCase: Case) {
        var cluster = Cluster()
        for (id, metadata) in testCase.machines { cluster.machine(id, metadata) }
        for (unit, fleet) in testCase.units { cluster.submit(unit, fleet) }
        let plan = cluster.schedule()
        for (unit, expected) in testCase.expected.sorted(by: { $0.key < $1.key }) {
            #expect(cluster.machineOf(unit) == expected, "\(unit)")
            let isGlobal = cluster.registry.units[name(unit)]?.options.isGlobal == true
            if expected == nil && !isGlobal {
                #expect(plan.unscheduled.contains { $0.name == name(unit) && !$0.reason.isEmpty }, "\(unit) needs a reason")
            }
        }
    }

    @Test func theReplacedUnitMovesAwayWhenItsReplacerLandsOnItsMachine() {
        var cluster = Cluster()
        cluster.machine("m1")
        cluster.machine("m2")
        cluster.submit("old.service")
        cluster.schedule()
        #expect(cluster.machineOf("old.service") == "m1")
        // filler loads m2, so the least-loaded, lowest-id choice for new.service is m1, where old runs.
        cluster.submit("filler.service", ["MachineID=m2"])
        cluster.submit("new.service", ["Replaces=old.service"])
        cluster.schedule()
        #expect(cluster.machineOf("new.service") == "m1")
        #expect(cluster.machineOf("old.service") == "m2")
    }

    @Test func aUnitWhoseNewFileReplacesItsNeighbourPushesItOff() {
        var cluster = Cluster()
        cluster.machine("m1")
        cluster.machine("m2")
        cluster.submit("a.service", ["MachineID=m1"])
        cluster.submit("b.service")
        cluster.apply(.assign([Assignment(unit: name("b.service"), machine: machineID("m1"))]))
        cluster.schedule()
        #expect(cluster.machineOf("a.service") == "m1" && cluster.machineOf("b.service") == "m1")
        let text = "[Service]\nExecStart=/bin/true\n\n[X-Fleet]\nReplaces=a.service\n"
        cluster.apply(.replaceUnitFiles([UnitSubmission(name: name("b.service"), unitFile: try! UnitFile(parsing: text), targetState: .launched)]))
        let plan = cluster.schedule()
        // a is pinned to m1 and b replaces it there, so a has nowhere to go.
        #expect(cluster.machineOf("b.service") == "m1")
        #expect(cluster.machineOf("a.service") == nil)
        #expect(plan.unscheduled.first?.reason.contains("Replaces") == true)
    }

    @Test func unitsStayPutWhenNothingChanges() {
        var cluster = Cluster()
        for index in 0..<4 { cluster.machine("m\(index)") }
        for index in 0..<20 { cluster.submit("u\(index).service", index % 3 == 0 ? ["Conflicts=u1*"] : []) }
        cluster.schedule()
        let second = Scheduler.plan(registry: cluster.registry, liveMachines: cluster.live.reversed())
        #expect(second.commands.isEmpty)
    }

    @Test func deadMachineUnitsAreRescheduledAndUnplaceableOnesUnassigned() {
        var cluster = Cluster()
        cluster.machine("m1")
        cluster.machine("m2")
        cluster.submit("a.service", ["MachineID=m1"])
        cluster.submit("b.service")
        cluster.submit("c.service")
        cluster.schedule()
        #expect(cluster.machineOf("b.service") == "m2")
        #expect(cluster.machineOf("c.service") == "m1")
        cluster.live.removeAll { $0.id == machineID("m1") }
        let plan = cluster.schedule()
        #expect(cluster.machineOf("a.service") == nil)
        #expect(cluster.machineOf("c.service") == "m2")
        #expect(plan.unscheduled.map(\.name) == [name("a.service")])
    }

    @Test func drainedMachinesAreEmptiedAndCapsAreHonoured() {
        var cluster = Cluster()
        cluster.machine("m1")
        cluster.machine("m2", unitsMax: 1)
        for index in 0..<3 { cluster.submit("u\(index).service") }
        cluster.schedule()
        #expect(cluster.registry.units.values.filter { $0.machine == machineID("m2") }.count == 1)
        cluster.live[0].isDrained = true
        let plan = cluster.schedule()
        #expect(cluster.registry.units.values.filter { $0.machine == machineID("m1") }.isEmpty)
        #expect(plan.unscheduled.count == 2)
        #expect(plan.unscheduled.allSatisfy { $0.reason.contains("drained") && $0.reason.contains("full") })
    }

    @Test func inactiveUnitsAreUnassignedAndFollowersMoveWithTheirPeer() {
        var cluster = Cluster()
        cluster.machine("m1")
        cluster.machine("m2")
        cluster.submit("db.service")
        cluster.submit("app.service", ["MachineOf=db.service"])
        cluster.schedule()
        #expect(cluster.machineOf("app.service") == cluster.machineOf("db.service"))
        let original = cluster.machineOf("db.service")!
        cluster.live.removeAll { $0.id.rawValue == original }
        cluster.schedule()
        #expect(cluster.machineOf("db.service") != original)
        #expect(cluster.machineOf("app.service") == cluster.machineOf("db.service"))
        cluster.apply(.setTargetState([name("db.service")], .inactive))
        let plan = cluster.schedule()
        #expect(cluster.machineOf("db.service") == nil)
        #expect(cluster.machineOf("app.service") == nil)
        #expect(plan.unscheduled.first?.reason.contains("inactive") == true)
    }

    @Test func decisionsComeInBoundedBatches() {
        var cluster = Cluster()
        for index in 0..<3 { cluster.machine("m\(index)") }
        var submissions: [UnitSubmission] = []
        let file = try! UnitFile(parsing: "[Service]\nExecStart=/bin/true\n")
        for index in 0..<250 {
            submissions.append(UnitSubmission(name: name("u\(index).service"), unitFile: file, targetState: .launched))
        }
        cluster.apply(.submitUnits(submissions))
        let plan = cluster.schedule(SchedulerConfiguration(batchCountMax: 100, placementRoundsMax: 4))
        #expect(plan.commands.count == 3)
        #expect(cluster.registry.units.values.allSatisfy { $0.machine != nil })
        let loads = Dictionary(grouping: cluster.registry.units.values, by: { $0.machine! }).mapValues(\.count)
        #expect(loads.values.sorted() == [83, 83, 84])
    }

    @Test func aChainLongerThanTheRoundLimitIsFinishedByLaterRounds() {
        var cluster = Cluster()
        cluster.machine("m1")
        cluster.machine("m2")
        // u0 <- u1 <- u2 <- u3, submitted so that name order is the reverse of the chain.
        cluster.submit("u3.service")
        for index in 0..<3 { cluster.submit("u\(index).service", ["MachineOf=u\(index + 1).service"]) }
        let configuration = SchedulerConfiguration(batchCountMax: 10, placementRoundsMax: 2)
        let first = cluster.schedule(configuration)
        #expect(first.unscheduled.map(\.name) == [name("u0.service"), name("u1.service")])
        #expect(first.unscheduled.allSatisfy { $0.reason.contains("not scheduled") })
        cluster.schedule(configuration)
        #expect(Set((0...3).map { cluster.machineOf("u\($0).service") }) == ["m1"])
    }

    @Test func theSamePlanWhateverTheOrderOfLiveMachines() {
        var cluster = Cluster()
        for index in 0..<6 { cluster.machine("m\(index)", ["rack": "r\(index % 2)"]) }
        for index in 0..<30 {
            cluster.submit("u\(index).service", index % 2 == 0 ? ["MachineMetadata=rack=r1"] : ["Conflicts=u1*.service"])
        }
        let plan = Scheduler.plan(registry: cluster.registry, liveMachines: cluster.live)
        #expect(Scheduler.plan(registry: cluster.registry, liveMachines: cluster.live.reversed()) == plan)
        #expect(Scheduler.plan(registry: cluster.registry, liveMachines: cluster.live + cluster.live) == plan)
    }

    @Test func globalUnitsRunOnEveryMatchingMachine() {
        var cluster = Cluster()
        cluster.submit("g.service", ["Global=true", "MachineMetadata=role=edge"])
        cluster.submit("h.service", ["Global=true"], target: .inactive)
        let edge = LiveMachine(id: machineID("m1"), metadata: ["role": "edge"])
        let core = LiveMachine(id: machineID("m2"), metadata: ["role": "core"])
        #expect(Scheduler.globalUnits(in: cluster.registry, on: edge) == [name("g.service")])
        #expect(Scheduler.globalUnits(in: cluster.registry, on: core).isEmpty)
    }

    @Test func liveMachinesTakeTheirMetadataAndDrainFromTheRegistry() {
        var cluster = Cluster()
        cluster.apply(.setMachineMetadata(machineID("m1"), [MetadataEntry(key: "disk", value: "ssd")]))
        cluster.apply(.drainMachine(machineID("m2")))
        let live = LiveMachine.from(cluster.registry, liveIDs: [machineID("m3"), machineID("m2"), machineID("m1"), machineID("m1")], unitsMax: 7)
        #expect(live.map(\.id.rawValue) == ["m1", "m2", "m3"])
        #expect(live.map(\.isDrained) == [false, true, false])
        #expect(live[0].metadata == ["disk": "ssd"])
        #expect(live.allSatisfy { $0.unitsMax == 7 })
    }

    @Test func metadataOperatorsOnAbsentAndNonNumericValues() throws {
        let file = try UnitFile(parsing: "[X-Fleet]\nMachineMetadata=disk!=hdd\nMachineMetadata=disk!=tape\nMachineMetadata=ram>=4096\n")
        let options = try FleetOptions(unitFile: file, unitName: name("a.service"))
        let matcher = MetadataMatcher(options.machineMetadata)
        #expect(!matcher.isSatisfied(by: ["ram": "8192"]))                  // fleet: a machine without the key never qualifies
        #expect(!matcher.isSatisfied(by: ["ram": "8192", "disk": "tape"]))  // != is "none of", not "any of"
        #expect(matcher.isSatisfied(by: ["ram": "8192", "disk": "ssd"]))
        #expect(!matcher.isSatisfied(by: ["ram": "lots", "disk": "ssd"]))   // >= needs a number
        #expect(!matcher.isSatisfied(by: [:]))
    }

    /// fleet's functional TestMetadataOperator, case by case: a machine with `ram=1024` and one
    /// unit requiring each of these.
    @Test(arguments: [
        ("ram>=1024", true), ("ram<=1024", true), ("ram>1023", true), ("ram<1025", true), ("ram!=1025", true),
        ("ram==1024", true), ("ram>=1025", false), ("ram<=1023", false), ("ram>1024", false), ("ram<1024", false),
        ("ram!=1024", false), ("ram==1025", false),
    ])
    func fleetsMetadataOperatorTable(_ requirement: String, _ schedules: Bool) throws {
        let file = try UnitFile(parsing: "[X-Fleet]\nMachineMetadata=\"\(requirement)\"\n")
        let options = try FleetOptions(unitFile: file, unitName: name("metadata-op.service"))
        #expect(MetadataMatcher(options.machineMetadata).isSatisfied(by: ["ram": "1024"]) == schedules, "\(requirement)")
    }

    /// Comparisons on one key all hold together (a range); plain values are alternatives.
    @Test func comparisonsOnOneKeyFormARangeAndPlainValuesAreAlternatives() throws {
        let range = try FleetOptions(
            unitFile: UnitFile(parsing: "[X-Fleet]\nMachineMetadata=ram>=1024 ram<=4096\n"), unitName: name("a.service"))
        let matcher = MetadataMatcher(range.machineMetadata)
        #expect(matcher.isSatisfied(by: ["ram": "2048"]))
        #expect(!matcher.isSatisfied(by: ["ram": "8192"]) && !matcher.isSatisfied(by: ["ram": "512"]))
        let either = try FleetOptions(
            unitFile: UnitFile(parsing: "[X-Fleet]\nMachineMetadata=region=eu region=us\n"), unitName: name("b.service"))
        #expect(MetadataMatcher(either.machineMetadata).isSatisfied(by: ["region": "us"]))
        #expect(!MetadataMatcher(either.machineMetadata).isSatisfied(by: ["region": "ap"]))
    }

    @Test func aMachinesUnitsAreItsAssignedAndMatchingGlobalOnes() {
        var cluster = Cluster()
        cluster.machine("m1", ["role": "edge"])
        cluster.submit("g.service", ["Global=true", "MachineMetadata=role=edge"])
        cluster.submit("a.service")
        cluster.submit("idle.service", target: .inactive)
        cluster.schedule()
        #expect(Scheduler.units(for: cluster.live[0], in: cluster.registry).map(\.name.rawValue) == ["a.service", "g.service"])
    }
}

/// A unit never conflicts with itself, and of global units that conflict with each other the one
/// launched first runs (fleet's TestScheduleGlobalConflicts and its fixture conflict-global.N).
@Suite(.onBackgroundThreads) struct GlobalConflictTests {
    static let conflictGlobal = ["Global=true", "Conflicts=conflict-global.*.service"]

    func threeMachines() -> Cluster {
        var cluster = Cluster()
        for id in ["m1", "m2", "m3"] { cluster.machine(id) }
        return cluster
    }

    /// What every machine runs of the global units, by the scheduler's answer and by the agent's
    /// (`units(for:)`); the two must agree.
    func globalsOnEachMachine(_ cluster: Cluster) -> [[String]] {
        cluster.live.map { machine in
            let globals = Scheduler.globalUnits(in: cluster.registry, on: machine).map(\.rawValue)
            let held = Scheduler.units(for: machine, in: cluster.registry).filter(\.options.isGlobal).map(\.name.rawValue)
            #expect(globals == held, "scheduler and agent disagree on \(machine.id)")
            return globals
        }
    }

    @Test func aGlobalUnitWhoseGlobMatchesItsOwnNameRunsOnEveryMachine() {
        var cluster = threeMachines()
        cluster.submit("conflict-global.0.service", Self.conflictGlobal)
        #expect(globalsOnEachMachine(cluster) == Array(repeating: ["conflict-global.0.service"], count: 3))
    }

    @Test func ofTwoConflictingGlobalUnitsTheOneLaunchedFirstKeepsEveryMachine() {
        var cluster = threeMachines()
        // Launched first although its name sorts second.
        cluster.submit("conflict-global.1.service", Self.conflictGlobal)
        cluster.submit("conflict-global.0.service", Self.conflictGlobal)
        #expect(globalsOnEachMachine(cluster) == Array(repeating: ["conflict-global.1.service"], count: 3))

        // Stopping the first lets the other run; launching the first again does not displace it.
        cluster.apply(.setTargetState([name("conflict-global.1.service")], .inactive))
        #expect(globalsOnEachMachine(cluster) == Array(repeating: ["conflict-global.0.service"], count: 3))
        cluster.apply(.setTargetState([name("conflict-global.1.service")], .launched))
        #expect(globalsOnEachMachine(cluster) == Array(repeating: ["conflict-global.0.service"], count: 3))

        // loaded -> launched is not a new launch: the order stays.
        cluster.apply(.setTargetState([name("conflict-global.0.service")], .loaded))
        cluster.apply(.setTargetState([name("conflict-global.0.service")], .launched))
        #expect(globalsOnEachMachine(cluster) == Array(repeating: ["conflict-global.0.service"], count: 3))
    }

    @Test func conflictingGlobalUnitsLaunchedByOneCommandRunTheFirstByNameNeverNeither() {
        var cluster = threeMachines()
        let file = try! UnitFile(parsing: "[Service]\nExecStart=/bin/true\n\n[X-Fleet]\n" + Self.conflictGlobal.joined(separator: "\n") + "\n")
        cluster.apply(.submitUnits(["conflict-global.b.service", "conflict-global.a.service"].map {
            UnitSubmission(name: name($0), unitFile: file, targetState: .inactive)
        }))
        #expect(globalsOnEachMachine(cluster) == Array(repeating: [], count: 3))
        cluster.apply(.setTargetState([name("conflict-global.b.service"), name("conflict-global.a.service")], .launched))
        #expect(globalsOnEachMachine(cluster) == Array(repeating: ["conflict-global.a.service"], count: 3))
    }

    @Test func aConflictingGlobalUnitRunsWhereTheEarlierOneDoesNotMatch() {
        var cluster = Cluster()
        cluster.machine("m1", ["role": "edge"])
        cluster.machine("m2")
        cluster.submit("edge.service", ["Global=true", "MachineMetadata=role=edge", "Conflicts=plain.service"])
        cluster.submit("plain.service", ["Global=true"])
        #expect(globalsOnEachMachine(cluster) == [["edge.service"], ["plain.service"]])
    }

    @Test func aGlobalUnitsOwnGlobsKeepNonGlobalUnitsOffItsMachines() {
        var cluster = Cluster()
        cluster.machine("m1", ["role": "edge"])
        cluster.submit("web.service")
        cluster.schedule()
        #expect(cluster.machineOf("web.service") == "m1")

        // A global unit launched later whose Conflicts names web moves web away, never itself.
        cluster.machine("m2")
        cluster.submit("proxy.service", ["Global=true", "MachineMetadata=role=edge", "Conflicts=web*"])
        cluster.schedule()
        #expect(cluster.machineOf("web.service") == "m2")
        #expect(globalsOnEachMachine(cluster) == [["proxy.service"], []])
    }

    @Test func aUnitsOwnReplacesGlobNeverPushesItselfOff() {
        var cluster = Cluster()
        cluster.machine("m1")
        cluster.machine("m2")
        cluster.submit("replace.0.service")
        cluster.schedule()
        cluster.submit("replace.1.service", ["Replaces=replace.*.service"])
        let plan = cluster.schedule()
        #expect(plan.unscheduled.isEmpty, "\(plan.unscheduled)")
        let placed = [cluster.machineOf("replace.0.service"), cluster.machineOf("replace.1.service")]
        #expect(placed.allSatisfy { $0 != nil } && placed[0] != placed[1], "\(placed)")
    }

    @Test func theLaunchVersionIsReplicatedStateAndSurvivesASnapshot() throws {
        var cluster = threeMachines()
        cluster.submit("a.service", target: .inactive)
        #expect(cluster.registry.units[name("a.service")]!.activeSince == 0)
        cluster.apply(.setTargetState([name("a.service")], .loaded))
        let launchedAt = cluster.registry.version
        #expect(cluster.registry.units[name("a.service")]!.activeSince == launchedAt)
        cluster.apply(.setTargetState([name("a.service")], .launched))
        let changed = try UnitFile(parsing: "[Service]\nExecStart=/bin/false\n")
        cluster.apply(.replaceUnitFiles([UnitSubmission(name: name("a.service"), unitFile: changed, targetState: .launched)]))
        #expect(cluster.registry.units[name("a.service")]!.activeSince == launchedAt)

        var restored = RegistryState()
        try restored.restore(from: cluster.registry.snapshot())
        #expect(restored == cluster.registry)
        #expect(restored.units[name("a.service")]!.activeSince == launchedAt)

        cluster.apply(.setTargetState([name("a.service")], .inactive))
        #expect(cluster.registry.units[name("a.service")]!.activeSince == 0)
    }
}
