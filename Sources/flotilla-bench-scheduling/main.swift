// Benchmark of the pure scheduler: 100,000 units with mixed constraints onto 1,000 machines.
// Thin: builds a registry through real commands, times Scheduler.plan, applies the plan, and
// prints one line per phase plus peak RSS. Contrib/bench/scheduling builds and runs it.
//
// Usage: flotilla-bench-scheduling [units] [machines]
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Agent
import Registry
import Scheduling
import UnitFile

let arguments = CommandLine.arguments
let unitCount = arguments.count > 1 ? Int(arguments[1]) ?? 100_000 : 100_000
let machineCount = arguments.count > 2 ? Int(arguments[2]) ?? 1_000 : 1_000
guard unitCount > 0, unitCount <= 1_000_000, machineCount > 0, machineCount <= 100_000 else {
    print("usage: flotilla-bench-scheduling [units 1...1000000] [machines 1...100000]")
    exit(2)
}

let regions = ["eu", "us", "ap", "sa"]
let templateCount = 20

/// The constraint mix, by unit index: 30% plain, 20% metadata (OR across regions and a RAM
/// bound), 20% template instances that conflict with their siblings, 15% MachineOf followers
/// of a plain unit, 10% loaded (not launched) plain units, 4.9% Replaces, 0.1% MachineID,
/// and 4 global units.
func fleetOptions(_ index: Int) -> (name: String, fleet: [String], target: TargetState) {
    switch index % 1000 {
    case 0..<300: return ("plain\(index).service", [], .launched)
    case 300..<500:
        return ("meta\(index).service", ["MachineMetadata=region=\(regions[index % 4])", "MachineMetadata=region=\(regions[(index + 1) % 4])",
                                         "MachineMetadata=ram>=\(4096 * (1 + index % 2))"], .launched)
    case 500..<700:
        let template = index % templateCount
        return ("app\(template)@\(index).service", ["Conflicts=app\(template)@*.service"], .launched)
    case 700..<850:
        let peer = index - index % 1000 + (index % 300)
        return ("side\(index).service", ["MachineOf=plain\(peer).service"], .launched)
    case 850..<950: return ("idle\(index).service", [], .loaded)
    case 950..<999: return ("new\(index).service", ["Replaces=idle\(index - 100).service"], .launched)
    default: return ("pinned\(index).service", ["MachineID=machine\(index % machineCount)"], .launched)
    }
}

func peakRSSKibibytes() -> Int {
    guard let file = fopen("/proc/self/status", "r") else { return -1 }
    defer { fclose(file) }
    var line = [CChar](repeating: 0, count: 256)
    while fgets(&line, Int32(line.count), file) != nil {
        let text = String(decoding: line.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        if text.hasPrefix("VmHWM:") { return Int(text.split(separator: " ")[1]) ?? -1 }
    }
    return -1
}

func seconds(_ duration: Duration) -> String {
    let (whole, attoseconds) = duration.components
    let value = Double(whole) + Double(attoseconds) / 1e18
    return String(Int(value * 1000)) + " ms"
}

var registry = RegistryState(limits: RegistryLimits(
    unitsMax: 2_000_000, machinesMax: 200_000, batchCountMax: 8_192, clientSessionsMax: 16,
    unitFileSizeMax: 64 * 1024, metadataEntriesMax: 8, metadataLengthMax: 64))
func apply(_ operation: RegistryOperation, to registry: inout RegistryState) {
    let result = registry.apply(RegistryCommand(operation), at: registry.version + 1)
    guard case .applied = result else {
        print("command rejected: \(result)")
        exit(1)
    }
}

let clock = ContinuousClock()
var start = clock.now
var machines: [MachineID] = []
for index in 0..<machineCount {
    let id = try! MachineID("machine\(index)")
    machines.append(id)
    apply(.setMachineMetadata(id, [MetadataEntry(key: "region", value: regions[index % 4]),
                                   MetadataEntry(key: "ram", value: String(2048 * (1 + index % 8)))]), to: &registry)
}
apply(.submitUnits([
    UnitSubmission(name: try! UnitName("agent.service"),
                   unitFile: try! UnitFile(parsing: "[Service]\nExecStart=/bin/true\n\n[X-Fleet]\nGlobal=true\n"),
                   targetState: .launched),
]), to: &registry)
var batch: [UnitSubmission] = []
for index in 0..<unitCount {
    let (name, fleet, target) = fleetOptions(index)
    let text = "[Service]\nExecStart=/usr/bin/docker run --rm --name %n example/\(index % 97)\n"
        + (fleet.isEmpty ? "" : "\n[X-Fleet]\n" + fleet.joined(separator: "\n") + "\n")
    batch.append(UnitSubmission(name: try! UnitName(name), unitFile: try! UnitFile(parsing: text), targetState: target))
    if batch.count == registry.limits.batchCountMax || index == unitCount - 1 {
        apply(.submitUnits(batch), to: &registry)
        batch = []
    }
}
print("submit: \(unitCount) units, \(machineCount) machines in \(seconds(clock.now - start)) (parse, hash, validate, apply)")

var live = LiveMachine.from(registry, liveIDs: machines)
start = clock.now
var plan = Scheduler.plan(registry: registry, liveMachines: live)
let firstDuration = clock.now - start
let assigned = plan.commands.reduce(0) { count, command in
    if case .assign(let items) = command.operation { return count + items.count }
    return count
}
print("schedule from empty: \(seconds(firstDuration)), \(assigned) assignments in \(plan.commands.count) commands, \(plan.unscheduled.count) unscheduled")
start = clock.now
for command in plan.commands { apply(command.operation, to: &registry) }
print("apply plan: \(seconds(clock.now - start))")

start = clock.now
plan = Scheduler.plan(registry: registry, liveMachines: live)
print("steady state replan: \(seconds(clock.now - start)), \(plan.commands.count) commands")

live.removeFirst(machineCount / 100)
start = clock.now
plan = Scheduler.plan(registry: registry, liveMachines: live)
let moved = plan.commands.reduce(0) { count, command in
    if case .assign(let items) = command.operation { return count + items.count }
    return count
}
print("after \(machineCount / 100) machines die: \(seconds(clock.now - start)), \(moved) units moved in \(plan.commands.count) commands, \(plan.unscheduled.count) unscheduled")
if let example = plan.unscheduled.first { print("  e.g. \(example.name): \(example.reason)") }
start = clock.now
let snapshot = registry.snapshot()
let snapshotDuration = clock.now - start
start = clock.now
var restored = RegistryState(limits: registry.limits)
do {
    try restored.restore(from: snapshot)
} catch {
    print("restore failed: \(error)")
    exit(1)
}
print("registry snapshot: \(snapshot.count / 1024) KiB in \(seconds(snapshotDuration)), restored (files re-validated) in \(seconds(clock.now - start)), equal: \(restored == registry)")
print("peak RSS: \(peakRSSKibibytes() / 1024) MiB")

// The agent's side: one machine with 1,000 units. Three plans, each timed as the median of 21
// runs: a fresh machine (every file to write, one reload, every unit to start), a machine that
// already runs everything (an agent restart re-adopting: nothing to do), and one where 10% of the
// files changed (stop, write, reload, start for those).
func agentPlanMedian(_ reconciler: AgentReconciler, _ desired: [DesiredUnit], _ observed: [ObservedUnit]) -> (Duration, Int) {
    var durations: [Duration] = []
    var actions = 0
    for _ in 0..<21 {
        let begin = clock.now
        actions = (try? reconciler.plan(desired: desired, observed: observed).count) ?? -1
        durations.append(clock.now - begin)
    }
    return (durations.sorted()[durations.count / 2], actions)
}
let agentUnitCount = 1_000
let agentFile = try! UnitFile(parsing: "[Service]\nExecStart=/bin/sleep 1000000\n")
let agentFileBytes = agentFile.serializedBytes()
let changedFile = try! UnitFile(parsing: "[Service]\nExecStart=/bin/sleep 2000000\n")
let agentDesired = (0..<agentUnitCount).map { index in
    DesiredUnit(name: try! UnitName("agent\(index).service"), state: .launched,
                hash: index % 10 == 0 ? changedFile.hash : agentFile.hash,
                file: index % 10 == 0 ? changedFile.serializedBytes() : agentFileBytes)
}
let agentRunning = (0..<agentUnitCount).map { index in
    ObservedUnit(name: try! UnitName("agent\(index).service"), loadState: .loaded, activeState: .active,
                 subState: "running", fileHash: agentFile.hash)
}
let agentRunningCurrent = zip(agentRunning, agentDesired).map { observed, desired in
    var unit = observed
    unit.fileHash = desired.hash
    return unit
}
let reconciler = AgentReconciler(unitsMax: 10_000)
let (freshDuration, freshActions) = agentPlanMedian(reconciler, agentDesired, [])
let (adoptDuration, adoptActions) = agentPlanMedian(reconciler, agentDesired, agentRunningCurrent)
let (changedDuration, changedActions) = agentPlanMedian(reconciler, agentDesired, agentRunning)
print("agent plan, \(agentUnitCount) units on one machine (median of 21): fresh \(microseconds(freshDuration)), \(freshActions) actions; "
    + "re-adopt running units \(microseconds(adoptDuration)), \(adoptActions) actions; "
    + "10% files changed \(microseconds(changedDuration)), \(changedActions) actions")

func microseconds(_ duration: Duration) -> String {
    let (whole, attoseconds) = duration.components
    return String(Int((Double(whole) + Double(attoseconds) / 1e18) * 1e6)) + " µs"
}
