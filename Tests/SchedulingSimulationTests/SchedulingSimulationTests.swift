import TestSupport
import Testing
import UnitFile
import Registry
import Scheduling
import Agent
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A seeded, single-threaded cluster: a registry, the scheduler run by the leader after every
/// event, and one agent per machine acting on a simulated systemd. Machines die (their systemd
/// keeps running, unseen), rejoin, drain and undrain; units change target state and get new files. After every
/// round the invariants below must hold on the live machines. A failure names its seed and step;
/// set SIM_SEED to replay one seed.
@Suite(.onBackgroundThreads) struct SchedulingSimulationTests {
    static let machineCount = 50

    @Test func invariantsHoldAcrossDeathsRejoinsAndDrains() throws {
        let seeds: [UInt64] = Self.seedFromEnvironment().map { [$0] } ?? [1]
        for seed in seeds {
            var simulation = try Simulation(seed: seed)
            try simulation.run(steps: 40)
        }
    }

    static func seedFromEnvironment() -> UInt64? {
        guard let pointer = getenv("SIM_SEED") else { return nil }
        return UInt64(String(cString: pointer))
    }
}

struct SimulationFailure: Error, CustomStringConvertible {
    let description: String
}

/// systemd on one machine, as the agent sees it.
struct SimulatedSystemd {
    var files: [UnitName: [UInt8]] = [:]
    /// The hash of each file, computed when written, as the shell would cache it.
    var hashes: [UnitName: UnitHash] = [:]
    var loaded: Set<UnitName> = []
    var active: Set<UnitName> = []

    var observed: [ObservedUnit] {
        Set(files.keys).union(active).sorted().map { name in
            ObservedUnit(name: name, loadState: loaded.contains(name) ? .loaded : .notFound,
                         activeState: active.contains(name) ? .active : .inactive, subState: "-",
                         fileHash: hashes[name])
        }
    }

    mutating func run(_ actions: [UnitAction]) {
        for action in actions {
            switch action {
            case .stop(let name): active.remove(name)
            case .removeFile(let name):
                files[name] = nil
                hashes[name] = nil
            case .writeFile(let name, let bytes):
                files[name] = bytes
                hashes[name] = UnitHash(digestOf: bytes)
            case .bindToLease:
                // Every file this systemd holds is written with its binding: never planned here.
                break
            case .reloadDaemon: loaded = Set(files.keys)
            case .start(let name):
                // As systemd: a start loads a unit it has not loaded yet from its file, if any.
                if files[name] != nil { loaded.insert(name) }
                if loaded.contains(name) { active.insert(name) }
            }
        }
    }
}

struct Simulation {
    var random: SplitMix64
    let seed: UInt64
    var registry = RegistryState()
    var live: Set<MachineID> = []
    var systemd: [MachineID: SimulatedSystemd] = [:]
    let machines: [MachineID]
    var step = 0

    init(seed: UInt64) throws {
        self.seed = seed
        random = SplitMix64(seed: seed)
        machines = (0..<SchedulingSimulationTests.machineCount).map { try! MachineID("m\($0 < 10 ? "0" : "")\($0)") }
        live = Set(machines)
        for (index, machine) in machines.enumerated() {
            systemd[machine] = SimulatedSystemd()
            try apply(.setMachineMetadata(machine, [
                MetadataEntry(key: "region", value: ["eu", "us", "ap"][index % 3]),
                MetadataEntry(key: "ram", value: String(1024 * (1 + index % 8))),
            ]))
        }
        try submitUnits()
    }

    mutating func apply(_ operation: RegistryOperation) throws {
        let result = registry.apply(RegistryCommand(operation), at: registry.version + 1)
        if case .rejected(let why) = result { throw SimulationFailure(description: "seed \(seed) step \(step): \(why)") }
    }

    static func file(_ fleet: [String]) -> UnitFile {
        try! UnitFile(parsing: "[Service]\nExecStart=/bin/true\n\n[X-Fleet]\n" + fleet.joined(separator: "\n") + "\n")
    }

    mutating func submitUnits() throws {
        var submissions: [UnitSubmission] = []
        func add(_ name: String, _ fleet: [String], _ target: TargetState = .launched) {
            submissions.append(UnitSubmission(name: try! UnitName(name), unitFile: Self.file(fleet), targetState: target))
        }
        for index in 0..<40 { add("web@\(index).service", ["Conflicts=web@*.service"]) }
        for index in 0..<60 { add("db\(index).service", ["MachineMetadata=region=eu", "MachineMetadata=region=us"]) }
        for index in 0..<60 { add("side\(index).service", ["MachineOf=db\(index).service"]) }
        for index in 0..<80 { add("big\(index).service", ["MachineMetadata=ram>=4096"]) }
        for index in 0..<60 { add("plain\(index).service", ["Global=false"], index % 4 == 0 ? .loaded : .launched) }
        add("pinned.service", ["MachineID=m07"])
        add("agent.service", ["Global=true"])
        add("edge.service", ["Global=true", "MachineMetadata=region=ap"])
        try apply(.submitUnits(submissions))
    }

    mutating func run(steps: Int) throws {
        try round()
        for _ in 0..<steps {
            step += 1
            try randomEvent()
            try round()
        }
    }

    mutating func randomEvent() throws {
        let machine = machines[Int(random.next() % UInt64(machines.count))]
        switch random.next() % 10 {
        case 0, 1, 2: live.remove(machine)                      // dies; its systemd keeps running, unseen
        case 3, 4, 5: live.insert(machine)                      // rejoins with whatever it was running
        case 6: try apply(.drainMachine(machine))
        case 7: try apply(.undrainMachine(machine))
        case 8:
            // A new version of a unit's file: agents must replace it wherever it runs.
            let units = registry.unitsSortedByName
            let unit = units[Int(random.next() % UInt64(units.count))]
            let current = try UnitFile(parsing: unit.file)
            let changed = try UnitFile(parsing: "[Unit]\nDescription=version \(step)\n\n" + current.sections
                .filter { $0.name != "Unit" }.map { section in
                    "[\(section.name)]\n" + section.options.map { "\($0.name)=\($0.rawValue)\n" }.joined()
                }.joined(separator: "\n"))
            try apply(.replaceUnitFiles([UnitSubmission(name: unit.name, unitFile: changed, targetState: unit.targetState)]))
        default:
            let units = registry.unitsSortedByName
            let unit = units[Int(random.next() % UInt64(units.count))]
            try apply(.setTargetState([unit.name], TargetState.allCases[Int(random.next() % 3)]))
        }
    }

    /// The leader schedules, then every live agent reconciles once, then the invariants are checked.
    mutating func round() throws {
        let liveMachines = LiveMachine.from(registry, liveIDs: Array(live), unitsMax: 40)
        let plan = Scheduler.plan(registry: registry, liveMachines: liveMachines)
        let again = Scheduler.plan(registry: registry, liveMachines: liveMachines.reversed())
        guard plan == again else { throw SimulationFailure(description: "seed \(seed) step \(step): plan depends on input order") }
        for command in plan.commands { try apply(command.operation) }
        // With every machine live and room for all, everything must be placed: the invariants
        // below would hold vacuously for a scheduler that placed nothing.
        if live.count == machines.count, registry.machines.values.allSatisfy({ !$0.isDrained }), !plan.unscheduled.isEmpty {
            throw failure("unscheduled with every machine live: \(plan.unscheduled.prefix(3))")
        }
        let units = registry.unitsSortedByName
        var globalsByMachine: [MachineID: Set<UnitName>] = [:]
        for machine in liveMachines { globalsByMachine[machine.id] = Set(Scheduler.globalUnits(in: registry, on: machine)) }
        for machine in liveMachines {
            let desired = desiredUnits(units, globals: globalsByMachine[machine.id]!, on: machine)
            let actions = try AgentReconciler().plan(desired: desired, observed: systemd[machine.id]!.observed)
            systemd[machine.id]!.run(actions)
            let settled = try AgentReconciler().plan(desired: desired, observed: systemd[machine.id]!.observed)
            guard settled.isEmpty else { throw failure("\(machine.id) not settled: \(settled)") }
        }
        try checkInvariants(liveMachines, units, globalsByMachine)
    }

    func desiredUnits(_ units: [UnitRecord], globals: Set<UnitName>, on machine: LiveMachine) -> [DesiredUnit] {
        units.compactMap { unit in
            guard unit.targetState != .inactive, unit.machine == machine.id || globals.contains(unit.name) else { return nil }
            return DesiredUnit(name: unit.name, state: unit.targetState == .launched ? .launched : .loaded,
                               hash: unit.hash, file: unit.file)
        }
    }

    func failure(_ text: String) -> SimulationFailure {
        SimulationFailure(description: "seed \(seed) step \(step): \(text) (replay with SIM_SEED=\(seed))")
    }

    func checkInvariants(_ liveMachines: [LiveMachine], _ units: [UnitRecord], _ globalsByMachine: [MachineID: Set<UnitName>]) throws {
        var runningOn: [UnitName: [MachineID]] = [:]
        for machine in liveMachines {
            for name in systemd[machine.id]!.active { runningOn[name, default: []].append(machine.id) }
        }
        for unit in units {
            let hosts = runningOn[unit.name] ?? []
            if unit.targetState != .launched {
                guard hosts.isEmpty else { throw failure("\(unit.name) is \(unit.targetState) but runs on \(hosts)") }
            } else if unit.options.isGlobal {
                let matching = liveMachines.filter { globalsByMachine[$0.id]!.contains(unit.name) }
                guard Set(hosts) == Set(matching.map(\.id)) else { throw failure("global \(unit.name) runs on \(hosts.count) of \(matching.count)") }
            } else {
                guard hosts.count <= 1 else { throw failure("\(unit.name) runs on \(hosts.sorted())") }
                guard unit.machine.map({ hosts == [$0] }) ?? hosts.isEmpty else {
                    throw failure("\(unit.name) assigned to \(String(describing: unit.machine)) runs on \(hosts)")
                }
            }
        }
        for machine in liveMachines {
            let running = systemd[machine.id]!.active.sorted()
            for name in running {
                guard let unit = registry.units[name] else { continue }
                guard systemd[machine.id]!.hashes[name] == unit.hash else { throw failure("\(name) runs an old file on \(machine.id)") }
                if machine.isDrained && !unit.options.isGlobal { throw failure("\(name) runs on drained \(machine.id)") }
                for other in running where other != name && unit.options.conflicts.contains(where: { $0.matches(other.rawValue) }) {
                    throw failure("\(name) and \(other) conflict on \(machine.id)")
                }
                for peer in unit.options.machineOf where registry.units[peer]?.targetState == .launched && !running.contains(peer) {
                    throw failure("\(name) runs on \(machine.id) without its peer \(peer)")
                }
            }
        }
    }
}
