import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Locking
import TestSupport

/// Samples, from the host, which units matching a glob run on each machine and with which
/// processes: one thread per machine reads the machine's cgroup tree (see `read`) as often as
/// `intervalSeconds` allows. What systemd's process tracking shows, not what flotillad reports.
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
    private let samples = Locked<[Sample]>([])
    private let isRunning = Locked(true)
    private let finished = Locked(0)
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

    /// The running units matching `pattern` (a glob) on the machine whose PID 1 is `pid`, each
    /// with the processes of its cgroup, or nil when the machine's cgroup cannot be read.
    ///
    /// Read from the host in the cgroup tree systemd keeps for the machine, not by asking its
    /// systemd: `systemctl show` of 1,000 units took seconds, and while the machine's systemd
    /// was busy stopping or starting them it answered nothing for 23 s, so the samples missed
    /// exactly the moments that matter. A unit's cgroup holds its processes from the fork to the
    /// last exit, so it is running (activating, active or deactivating) exactly while its
    /// `cgroup.procs` is not empty; the process IDs stand in for MainPID (a restart changes them).
    static func read(pid: String, pattern: String) -> [String: String]? {
        guard let slice = systemSlice(ofMachineWithPID: pid),
              let entries = try? FileManager.default.contentsOfDirectory(atPath: slice) else { return nil }
        var running: [String: String] = [:]
        for entry in entries where fnmatch(pattern, entry, 0) == 0 {
            guard let procs = try? String(contentsOfFile: slice + "/" + entry + "/cgroup.procs", encoding: .utf8) else { continue }
            let pids = procs.split(separator: "\n").sorted()
            if !pids.isEmpty { running[entry] = pids.joined(separator: ",") }
        }
        return running
    }

    /// `system.slice` of the machine whose PID 1 is `pid`, in the host's unified cgroup tree
    /// (at /sys/fs/cgroup, or /sys/fs/cgroup/unified on a hybrid host).
    static func systemSlice(ofMachineWithPID pid: String) -> String? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/cgroup", encoding: .utf8),
              let line = text.split(separator: "\n").first(where: { $0.hasPrefix("0::") }) else { return nil }
        // PID 1 sits in the payload's init.scope; its units are beside it.
        let initScope = String(line.dropFirst(3))
        guard initScope.hasSuffix("/init.scope") else { return nil }
        let payload = String(initScope.dropLast("/init.scope".count))
        let root = FileManager.default.fileExists(atPath: "/sys/fs/cgroup/cgroup.controllers") ? "/sys/fs/cgroup" : "/sys/fs/cgroup/unified"
        return root + payload + "/system.slice"
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
