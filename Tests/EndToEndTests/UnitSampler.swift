import Foundation
import Synchronization
import TestSupport

/// Samples, from the host, which units matching a glob are active on each machine and with
/// which main PID: one thread per machine runs `systemctl show` in the machine's namespaces
/// (nsenter into its PID 1) as fast as `intervalSeconds` allows. What systemd says, not what
/// flotillad reports.
final class UnitSampler: Sendable {
    struct Sample: Sendable {
        /// Seconds since the sampler started.
        var time: Double
        var machine: Int
        /// Active units and their main PIDs.
        var active: [String: String]
    }

    let pattern: String
    let intervalSeconds: Double
    private let pids: [Int: String]
    private let samples = Mutex<[Sample]>([])
    private let isRunning = Mutex(true)
    private let finished = Mutex(0)
    private let started = Date()

    init(bed: Testbed, machines: [Int], pattern: String, intervalSeconds: Double = 0.1) throws {
        self.pattern = pattern
        self.intervalSeconds = intervalSeconds
        var pids: [Int: String] = [:]
        for machine in machines { pids[machine] = try bed.run(["pid", String(machine)]).trimmedOutput }
        self.pids = pids
        for machine in machines {
            let thread = Thread { [self] in self.loop(machine) }
            thread.start()
        }
    }

    private func loop(_ machine: Int) {
        defer { finished.withLock { $0 += 1 } }
        while isRunning.withLock({ $0 }) {
            let begun = Date()
            if let active = Self.read(pid: pids[machine]!, pattern: pattern) {
                let sample = Sample(time: begun.timeIntervalSince(started), machine: machine, active: active)
                samples.withLock { $0.append(sample) }
            }
            let spent = Date().timeIntervalSince(begun)
            if spent < intervalSeconds { usleep(useconds_t((intervalSeconds - spent) * 1_000_000)) }
        }
    }

    /// The active units matching `pattern` on the machine whose PID 1 is `pid`, or nil when
    /// systemctl could not be asked.
    static func read(pid: String, pattern: String) -> [String: String]? {
        guard let result = try? ChildProcess.run(["/usr/bin/nsenter", "-t", pid, "-a", "systemctl", "show", "-p", "Id,ActiveState,MainPID", pattern],
                                                 timeoutSeconds: 10), result.status == 0 else { return nil }
        var active: [String: String] = [:]
        for block in result.standardOutput.components(separatedBy: "\n\n") {
            var fields: [String: String] = [:]
            for line in block.split(separator: "\n") {
                guard let equals = line.firstIndex(of: "=") else { continue }
                fields[String(line[..<equals])] = String(line[line.index(after: equals)...])
            }
            if let id = fields["Id"], fields["ActiveState"] == "active" || fields["ActiveState"] == "activating" || fields["ActiveState"] == "deactivating" {
                active[id] = fields["MainPID"] ?? "?"
            }
        }
        return active
    }

    var elapsedSeconds: Double { Date().timeIntervalSince(started) }

    /// Stops sampling and returns every sample, in time order.
    func stop() -> [Sample] {
        isRunning.withLock { $0 = false }
        while finished.withLock({ $0 }) < pids.count { usleep(10_000) }
        return samples.withLock { $0 }.sorted { $0.time < $1.time }
    }
}

/// What a run of samples shows about a fault on one machine.
struct FaultReport: CustomStringConvertible {
    var violations: [String] = []
    /// Units of the faulted machine seen active elsewhere afterwards, and when (seconds after
    /// the fault) the last of them was first seen there.
    var movedCount = 0
    var lastMovedSeconds: Double?
    /// When the faulted machine's last unit was last seen running on it.
    var lastStoppedSeconds: Double?
    var sampleCount = 0
    var largestGapSeconds = 0.0

    var description: String {
        let moved = lastMovedSeconds.map { String(format: "%.2f s", $0) } ?? "-"
        let stopped = lastStoppedSeconds.map { String(format: "%.2f s", $0) } ?? "-"
        return "\(sampleCount) samples (largest gap between two of one machine \(String(format: "%.2f", largestGapSeconds)) s); "
            + "\(movedCount) units moved, all active elsewhere by \(moved), faulted machine's units all stopped by \(stopped); "
            + (violations.isEmpty ? "no violation" : "violations: \(violations.prefix(10))")
    }

    /// Checks the samples: no unit proven active on two machines at once; on every machine but `faulted`, no unit that ran at the
    /// first sample stopped or changed main PID; the faulted machine's units started elsewhere
    /// only after they were last seen on it. `faultAt`: seconds since the sampler started.
    static func analyse(_ samples: [UnitSampler.Sample], machines: [Int], faulted: Int?, faultAt: Double) -> FaultReport {
        var report = FaultReport()
        report.sampleCount = samples.count
        let byMachine = Dictionary(grouping: samples, by: \.machine)
        for machine in machines {
            let times = (byMachine[machine] ?? []).map(\.time)
            for (a, b) in zip(times, times.dropFirst()) { report.largestGapSeconds = max(report.largestGapSeconds, b - a) }
        }
        // 1. Nothing outside the faulted machine stops or restarts.
        for machine in machines where machine != faulted {
            guard let first = byMachine[machine]?.first(where: { $0.time < faultAt }) else {
                report.violations.append("m\(machine): no sample before the fault")
                continue
            }
            for sample in byMachine[machine]! where sample.time >= first.time {
                for (unit, pid) in first.active {
                    guard let now = sample.active[unit] else {
                        report.violations.append("m\(machine): \(unit) stopped at \(String(format: "%.2f", sample.time - faultAt)) s")
                        continue
                    }
                    if now != pid { report.violations.append("m\(machine): \(unit) restarted (MainPID \(pid) -> \(now))") }
                }
            }
        }
        // 2. Never on two machines at once. A unit seen with the same main PID in two
        // consecutive samples of one machine ran there throughout; any sample of another
        // machine inside that span that shows it active is a proven double run. (Overlaps
        // shorter than a sampling interval escape this check; check 3 catches the moves.)
        for machine in machines {
            let own = byMachine[machine] ?? []
            for (earlier, later) in zip(own, own.dropFirst()) {
                for (unit, pid) in earlier.active where later.active[unit] == pid {
                    for other in machines where other != machine {
                        if let clash = byMachine[other]?.first(where: { $0.time > earlier.time && $0.time < later.time && $0.active[unit] != nil }) {
                            report.violations.append("\(unit) ran on m\(machine) from \(String(format: "%.2f", earlier.time - faultAt)) s to \(String(format: "%.2f", later.time - faultAt)) s and on m\(other) at \(String(format: "%.2f", clash.time - faultAt)) s")
                        }
                    }
                }
            }
        }
        // 3. The faulted machine's units: last seen there before first seen elsewhere.
        if let faulted, let before = byMachine[faulted]?.last(where: { $0.time < faultAt }) {
            var lastSeen: [String: Double] = [:]
            for sample in byMachine[faulted]! { for unit in sample.active.keys { lastSeen[unit] = sample.time } }
            report.lastStoppedSeconds = before.active.keys.compactMap { lastSeen[$0] }.max().map { $0 - faultAt }
            for unit in before.active.keys {
                let elsewhere = samples.first { $0.machine != faulted && $0.time > faultAt && $0.active[unit] != nil }
                guard let elsewhere else { continue }
                report.movedCount += 1
                report.lastMovedSeconds = max(report.lastMovedSeconds ?? 0, elsewhere.time - faultAt)
                if let last = lastSeen[unit], last >= elsewhere.time {
                    report.violations.append("\(unit) started on m\(elsewhere.machine) at \(String(format: "%.2f", elsewhere.time - faultAt)) s while still seen on m\(faulted) at \(String(format: "%.2f", last - faultAt)) s")
                }
            }
        }
        return report
    }
}
