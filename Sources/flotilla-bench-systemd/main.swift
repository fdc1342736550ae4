// flotilla-bench-systemd: measures SystemdBus against one test bed machine's systemd.
// Contrib/bench/systemd-bus.sh boots the machine, runs this, and appends to RESULTS.md.
//
//   flotilla-bench-systemd start-latency PID UNITS REPEATS
//       per repeat: write UNITS fresh unit files, LinkUnitFiles (one call), StartUnit for all,
//       and time until every unit was seen ActiveState=active through PropertiesChanged.
//   flotilla-bench-systemd track PID UNITS SECONDS
//       start UNITS units, watch them, then for SECONDS only consume state changes, and report
//       this process's CPU time (getrusage) over that window. The changes come from outside.
//   flotilla-bench-systemd notify
//       sd_notify a status and READY=1, then sleep: a Type=notify service (SystemdBusTests).
//   flotilla-bench-systemd log MESSAGE
//       log MESSAGE at warning level through JournalLogHandler, with metadata (SystemdBusTests).

import Logging
import SystemdBus

#if canImport(Glibc)
import Glibc
#endif

func fail(_ message: String) -> Never {
    FileHandle.standardError(message)
    exit(2)
}

enum FileHandle {
    static func standardError(_ text: String) { writeLine(text, to: 2) }
}

/// Writes a line straight to the descriptor: stdout to a file is block-buffered, and the driving
/// script waits for `track-ready` while this process runs.
func emit(_ text: String) { writeLine(text, to: 1) }

func writeLine(_ text: String, to fd: Int32) {
    let line = Array((text + "\n").utf8)
    _ = line.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
}

func managerFor(pid: Int32) -> SystemdManager {
    var configuration = SystemdBusConfiguration(bus: .address("unix:path=/proc/\(pid)/root/run/dbus/system_bus_socket"))
    configuration.unitFileDirectory = UnitFileDirectory(
        writePath: "/proc/\(pid)/root/run/flotilla/units", managerPath: "/run/flotilla/units")
    configuration.jobTimeout = .seconds(60)
    var logger = Logger(label: "bench")
    logger.logLevel = .warning
    return SystemdManager(configuration: configuration, logger: logger)
}

func unitNames(prefix: String, count: Int) -> [UnitName] {
    (0..<count).map { try! UnitName("\(prefix)-\($0).service") }
}

/// A long-running service that is active as soon as it has forked (Type=simple).
let serviceContents = "[Service]\nExecStart=/bin/sleep 1000000\n"

func cpuSeconds() -> Double {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    let user = Double(usage.ru_utime.tv_sec) + Double(usage.ru_utime.tv_usec) / 1e6
    let system = Double(usage.ru_stime.tv_sec) + Double(usage.ru_stime.tv_usec) / 1e6
    return user + system
}

func percentile(_ values: [Double], _ fraction: Double) -> Double {
    let sorted = values.sorted()
    return sorted[min(sorted.count - 1, Int((Double(sorted.count - 1) * fraction).rounded()))]
}

func milliseconds(_ duration: Duration) -> Double {
    Double(duration.components.seconds) * 1000 + Double(duration.components.attoseconds) / 1e15
}

/// Waits until every unit in `units` was seen active on `stream`.
func awaitAllActive(_ stream: UnitStateChanges, _ units: [UnitName]) async {
    var remaining = Set(units)
    for await change in stream where change.state.active == .active {
        remaining.remove(change.unit)
        if remaining.isEmpty { return }
    }
}

func startLatency(pid: Int32, unitCount: Int, repeats: Int) async throws {
    let manager = managerFor(pid: pid)
    try await manager.connect()
    let clock = ContinuousClock()
    var samples: [Double] = []
    for repeatIndex in 0..<repeats {
        let units = unitNames(prefix: "bench-\(unitCount)-\(repeatIndex)-\(getpid())", count: unitCount)
        for unit in units { _ = try manager.writeUnitFile(unit, contents: serviceContents) }
        try await manager.watch(units)
        // Drain the initial states the watch published.
        var initial = Set(units)
        for await change in manager.stateChanges {
            initial.remove(change.unit)
            if initial.isEmpty { break }
        }
        let start = clock.now
        _ = try await manager.linkUnitFiles(units)
        try await withThrowingTaskGroup(of: JobResult.self) { group in
            for unit in units { group.addTask { try await manager.startUnit(unit) } }
            group.addTask { await awaitAllActive(manager.stateChanges, units); return .done }
            for try await result in group where result != .done { fail("start job ended \(result)") }
        }
        samples.append(milliseconds(clock.now - start))
        // Clean up, untimed: stop, unlink, forget.
        try await withThrowingTaskGroup(of: Void.self) { group in
            for unit in units { group.addTask { _ = try await manager.stopUnit(unit) } }
            try await group.waitForAll()
        }
        _ = try await manager.disableUnitFiles(units)
        await manager.unwatch(units)
        for unit in units { try manager.removeUnitFile(unit) }
    }
    try await manager.reload()
    emit("start-latency units=\(unitCount) repeats=\(repeats) median_ms=\(fmt(percentile(samples, 0.5))) p90_ms=\(fmt(percentile(samples, 0.9))) min_ms=\(fmt(samples.min()!)) max_ms=\(fmt(samples.max()!))")
    await manager.close()
}

func track(pid: Int32, unitCount: Int, seconds: Int) async throws {
    let manager = managerFor(pid: pid)
    try await manager.connect()
    let units = unitNames(prefix: "track", count: unitCount)
    for unit in units { _ = try manager.writeUnitFile(unit, contents: serviceContents) }
    _ = try await manager.linkUnitFiles(units)
    try await withThrowingTaskGroup(of: Void.self) { group in
        for unit in units { group.addTask { _ = try await manager.startUnit(unit) } }
        try await group.waitForAll()
    }
    try await manager.watch(units)
    // Settle: consume what setting up produced.
    let settle = Task { for await _ in manager.stateChanges {} }
    try await Task.sleep(for: .seconds(2))
    settle.cancel()
    _ = await settle.value

    emit("track-ready units=\(unitCount)")
    let cpuBefore = cpuSeconds()
    let clock = ContinuousClock()
    let start = clock.now
    let consumer = Task { () -> Int in
        var changes = 0
        for await _ in manager.stateChanges { changes += 1 }
        return changes
    }
    try await Task.sleep(for: .seconds(seconds))
    consumer.cancel()
    let changes = await consumer.value
    let wall = Double(milliseconds(clock.now - start)) / 1000
    let cpu = cpuSeconds() - cpuBefore
    emit("track units=\(unitCount) seconds=\(fmt(wall)) changes_seen=\(changes) cpu_seconds=\(fmt(cpu)) cpu_percent_of_core=\(fmt(100 * cpu / wall))")
    await manager.close()
}

func fmt(_ value: Double) -> String {
    String(Double(Int((value * 1000).rounded())) / 1000)
}

let arguments = Array(CommandLine.arguments.dropFirst())
switch arguments.first {
case "start-latency":
    guard arguments.count == 4, let pid = Int32(arguments[1]), let units = Int(arguments[2]), let repeats = Int(arguments[3]) else {
        fail("usage: start-latency PID UNITS REPEATS")
    }
    try await startLatency(pid: pid, unitCount: units, repeats: repeats)
case "track":
    guard arguments.count == 4, let pid = Int32(arguments[1]), let units = Int(arguments[2]), let seconds = Int(arguments[3]) else {
        fail("usage: track PID UNITS SECONDS")
    }
    try await track(pid: pid, unitCount: units, seconds: seconds)
case "notify":
    _ = try SystemdNotifier.notify([.status("benchmark helper up"), .ready])
    while true { sleep(3600) }
case "log":
    guard arguments.count == 2 else { fail("usage: log MESSAGE") }
    let logger = Logger(label: "flotilla.bench") { JournalLogHandler(label: $0, syslogIdentifier: "flotilla-bench") }
    logger.warning("\(arguments[1])", metadata: ["unit": "sdbus-example.service", "attempt": "3"])
    // Stay alive until stopped: journald reads a datagram sender's unit from /proc/PID/cgroup
    // when it gets to the datagram, and a sender that has already exited gets no _SYSTEMD_UNIT
    // (systemd 252), so its entry would not be found by unit.
    while true { sleep(3600) }
default:
    fail("usage: flotilla-bench-systemd start-latency|track|notify|log ...")
}
