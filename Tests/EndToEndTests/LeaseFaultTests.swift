import Foundation
import Testing
import TestSupport

/// Issue 11: a leader's trouble must not stop or restart any unit on machines that still reach
/// a quorum. Each fault hits the leader's machine while every machine's systemd is sampled from
/// the host (`UnitSampler`, every 100 ms): outside the faulted machine no unit may stop or
/// change its main PID, no unit may run on two machines at once, and the faulted machine's
/// units may start elsewhere only after it stopped them.
@Suite(
    "leases: a leader's trouble stops nothing outside its machine", .serialized,
    .enabled(if: FlotillaCluster.missingCapability == nil,
             Comment(rawValue: "this host lacks \(FlotillaCluster.missingCapability ?? "nothing")"))
)
struct LeaseFaultTests {
    enum Fault: String, CaseIterable, CustomStringConvertible {
        /// The leader's machine unplugged from the network for 10 s: it is cut off from the
        /// quorum, so its units stop, and only then start elsewhere.
        case isolate
        /// The leader cut from one other voter for 10 s: every machine still reaches a majority.
        case cutFromOnePeer
        /// kill -9 of the leader's flotillad (systemd restarts it): nothing may stop at all.
        case killNine
        /// SIGSTOP of the leader's flotillad for 5 s and for 30 s: its systemd ends the lease, so
        /// its units stop although flotillad cannot act, before they start elsewhere.
        case freeze5
        case freeze30
        /// Gossip alone cut (UDP and TCP of the gossip port dropped in the leader's machine) until
        /// membership calls it dead and 5 s more, while the voters still reach it:
        /// gossip's verdict moves nothing, so nothing may stop anywhere.
        case gossipCut

        var description: String { rawValue }
        /// Whether the faulted machine is cut off from the quorum for longer than the lease.
        var stopsTheFaultedMachine: Bool { self == .isolate || self == .freeze5 || self == .freeze30 }
    }

    static let unitsPerMachine = 10

    @Test(arguments: [3, 5])
    func leaderFaultsStopNothingOutsideTheFaultedMachine(machines: Int) async throws {
        // Blocks for minutes on the machines: off the cooperative pool (OwnThreadExecutor).
        try await onOwnThread {
            try FlotillaCluster.with(machines: machines, tag: "lease\(machines)") { cluster in
                let names = (1...machines * Self.unitsPerMachine).map { "lt-\($0).service" }
                try cluster.startSleepUnits(names, on: 1)
                try cluster.waitUntilEachRunsOnce(names)
                for fault in Fault.allCases {
                    let leader = try cluster.leaderMachine()
                    let sampler = try UnitSampler(bed: cluster.bed, machines: Array(1...machines), pattern: "lt-*.service")
                    Thread.sleep(forTimeInterval: 1.5)
                    let faultAt = sampler.elapsedSeconds
                    try cluster.apply(fault, to: leader)
                    let settled = try cluster.waitUntilEachRunsOnce(names, timeoutSeconds: 60, throwing: false)
                    Thread.sleep(forTimeInterval: 2)
                    let samples = sampler.stop()
                    let report = FaultReport.analyse(samples, machines: Array(1...machines), faulted: fault.stopsTheFaultedMachine ? leader : nil,
                                                     faultAt: faultAt)
                    print("lease fault \(fault) of leader m\(leader) (\(machines) machines): \(report)")
                    if !settled { Issue.record("\(fault): not every unit runs exactly once again afterwards: \(try cluster.diagnostics())") }
                    #expect(report.violations.isEmpty, "\(fault) of leader m\(leader), \(machines) machines: \(report)")
                    #expect(report.largestGapSeconds < 1.5, "\(fault): the sampler kept up (\(report))")
                    if fault.stopsTheFaultedMachine, let before = samples.last(where: { $0.machine == leader && $0.time < faultAt }) {
                        #expect(report.movedCount == before.active.count, "\(fault): every unit of m\(leader) moved: \(report)")
                    }
                }
            }
        }
    }
}

extension LeaseFaultTests {
    static let manyUnitsPerMachine = 1_000

    /// 1,000 units per machine. The leader's isolation stops nothing outside its machine; then
    /// every machine is cut off for 3 s, so no machine reaches a majority and every lease lapses
    /// (all 3,000 units stop) but nothing is revoked (the cut is shorter than the expiry). From the
    /// heal, the units must all be active again within 10 times what systemd itself takes to start
    /// the same units under other names on the same machines, measured here in the same run.
    @Test func atOneThousandUnitsPerMachineTheHealStartsThemWithinTenTimesSystemdsOwnTime() async throws {
        // Blocks for minutes on the machines: off the cooperative pool (OwnThreadExecutor).
        try await onOwnThread {
            let machines = 3
            try FlotillaCluster.with(machines: machines, tag: "lease1k") { cluster in
                let names = (1...machines * Self.manyUnitsPerMachine).map { "lk-\($0).service" }
                try cluster.startSleepUnits(names, on: 1)
                try cluster.waitUntilEachRunsOnce(names, timeoutSeconds: 900)

                let leader = try cluster.leaderMachine()
                let sampler = try UnitSampler(bed: cluster.bed, machines: Array(1...machines), pattern: "lk-*.service")
                Thread.sleep(forTimeInterval: 2)
                let faultAt = sampler.elapsedSeconds
                try cluster.apply(.isolate, to: leader)
                let settled = try cluster.waitUntilEachRunsOnce(names, timeoutSeconds: 300, throwing: false)
                Thread.sleep(forTimeInterval: 2)
                let report = FaultReport.analyse(sampler.stop(), machines: Array(1...machines), faulted: leader, faultAt: faultAt)
                print("lease fault isolate of leader m\(leader) with \(names.count) units: \(report)")
                #expect(settled, "every unit runs exactly once after the isolation")
                #expect(report.violations.isEmpty, "isolation with \(names.count) units: \(report.violations.prefix(20))")

                // Every machine cut off for 3 s.
                let pids = try (1...machines).map { try cluster.bed.run(["pid", String($0)]).trimmedOutput }
                let before = pids.map { UnitSampler.read(pid: $0, pattern: "lk-*.service") ?? [:] }
                let cut = Date()
                for machine in 1...machines { try cluster.bed.run(["isolate", String(machine)]) }
                let allStopped = Testbed.eventually(timeoutSeconds: 30, intervalSeconds: 0.1) {
                    pids.allSatisfy { (UnitSampler.read(pid: $0, pattern: "lk-*.service") ?? ["?": "?"]).isEmpty }
                }
                #expect(allStopped, "every lease lapsed and every unit stopped while no machine reached a majority")
                Thread.sleep(forTimeInterval: max(0, 3 - Date().timeIntervalSince(cut)))
                let healed = Date()
                for machine in 1...machines { try cluster.bed.run(["rejoin", String(machine)]) }
                try cluster.waitUntilEachRunsOnce(names, timeoutSeconds: 600)
                let regainSeconds = Date().timeIntervalSince(healed)
                let after = pids.map { UnitSampler.read(pid: $0, pattern: "lk-*.service") ?? [:] }
                #expect(zip(before, after).allSatisfy { Set($0.keys) == Set($1.keys) }, "no unit moved: nothing was revoked")

                // systemd's own time for the same files as sd-N.service, each machine starting its share.
                for (index, pid) in pids.enumerated() {
                    let share = (after[index].keys).map { "sd-" + $0.dropFirst(3) }
                    let directory = "/proc/\(pid)/root/run/systemd/system"
                    for unit in share {
                        try Data("[Unit]\nDescription=lease test\n\n[Service]\nExecStart=/bin/sleep 1000000\n".utf8)
                            .write(to: URL(fileURLWithPath: directory + "/" + unit))
                    }
                    try cluster.bed.exec(index + 1, "systemctl", "daemon-reload")
                }
                let ownStart = Date()
                // One shell starts all three at once, as the agents did.
                let script = pids.enumerated().map { index, pid in
                    "/usr/bin/nsenter -t \(pid) -a systemctl start --no-block " + after[index].keys.map { "sd-" + $0.dropFirst(3) }.joined(separator: " ")
                }.joined(separator: " & ") + "; wait"
                let started = try ChildProcess.run(["/bin/sh", "-c", script], timeoutSeconds: 300)
                #expect(started.status == 0, "systemctl start of the copies: \(started.standardError)")
                let ownDone = Testbed.eventually(timeoutSeconds: 600, intervalSeconds: 0.1) {
                    pids.map { (UnitSampler.read(pid: $0, pattern: "sd-*.service") ?? [:]).count }.reduce(0, +) == names.count
                }
                let ownSeconds = Date().timeIntervalSince(ownStart)
                #expect(ownDone, "systemd started the \(names.count) copies")
                print("lease quorum loss with \(names.count) units: heal -> all active \(String(format: "%.2f", regainSeconds)) s; "
                      + "systemd's own start of the same units \(String(format: "%.2f", ownSeconds)) s")
                #expect(regainSeconds <= 10 * ownSeconds,
                        "heal -> all active took \(regainSeconds) s, more than 10 x systemd's own \(ownSeconds) s")
            }
        }
    }
}

extension FlotillaCluster {
    /// Plain `sleep` units written in `machine` and started with flotillactl from there.
    func startSleepUnits(_ names: [String], on machine: Int, description: String = "lease test") throws {
        // Written from the host through the machine's root: thousands of files in one command
        // line would pass the kernel's argument limit.
        let directory = "/proc/\(try bed.run(["pid", String(machine)]).trimmedOutput)/root/tmp/units"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        for name in names {
            try Data("[Unit]\nDescription=\(description) \(name)\n\n[Service]\nExecStart=/bin/sleep 1000000\n".utf8)
                .write(to: URL(fileURLWithPath: directory + "/" + name))
        }
        // In batches: one flotillactl per 200 units, a few at a time.
        let batches = stride(from: 0, to: names.count, by: 200).map { Array(names[$0..<min($0 + 200, names.count)]) }
        for group in stride(from: 0, to: batches.count, by: 4).map({ Array(batches[$0..<min($0 + 4, batches.count)]) }) {
            let commands = group.map { batch in "(cd /tmp/units && \(control) start --no-block \(batch.joined(separator: " ")) >/dev/null)" }
            try bed.run(["exec", String(machine), "sh", "-c", commands.joined(separator: " & ") + "; wait"], timeoutSeconds: 600)
        }
    }

    /// Waits until each of `names` is active on exactly one machine.
    @discardableResult
    func waitUntilEachRunsOnce(_ names: [String], timeoutSeconds: Double = 300, throwing: Bool = true) throws -> Bool {
        let pids = try (1...bed.machineCount).map { try bed.run(["pid", String($0)]).trimmedOutput }
        let wanted = Set(names)
        let pattern = Self.commonPattern(names)
        let settled = Testbed.eventually(timeoutSeconds: timeoutSeconds, intervalSeconds: 0.5) {
            var counts: [String: Int] = [:]
            for pid in pids {
                guard let active = UnitSampler.read(pid: pid, pattern: pattern) else { return false }
                for unit in active.keys where wanted.contains(unit) { counts[unit, default: 0] += 1 }
            }
            return counts.count == wanted.count && counts.values.allSatisfy { $0 == 1 }
        }
        if !settled && throwing {
            throw ClusterFailure(description: "not every unit came to run exactly once within \(timeoutSeconds) s: \(try diagnostics())")
        }
        return settled
    }

    /// `lt-*.service` for names that all start with `lt-`.
    static func commonPattern(_ names: [String]) -> String {
        guard let first = names.first, let dash = first.firstIndex(of: "-") else { return "*" }
        return String(first[...dash]) + "*.service"
    }

    func apply(_ fault: LeaseFaultTests.Fault, to machine: Int) throws {
        switch fault {
        case .isolate:
            try bed.run(["isolate", String(machine)])
            Thread.sleep(forTimeInterval: 10)
            try bed.run(["rejoin", String(machine)])
        case .cutFromOnePeer:
            let other = [1, 2, 3].first { $0 != machine }!
            try bed.cut(machine, other)
            Thread.sleep(forTimeInterval: 10)
            try bed.heal(machine, other)
        case .killNine:
            try bed.exec(machine, "systemctl", "kill", "-s", "KILL", "flotillad.service")
            Thread.sleep(forTimeInterval: 5)
        case .gossipCut:
            let table = "inet flotilla-gossip-cut"
            try bed.exec(machine, "nft", "add table \(table); "
                + "add chain \(table) input { type filter hook input priority 0; }; "
                + "add chain \(table) output { type filter hook output priority 0; }; "
                + "add rule \(table) input meta l4proto { tcp, udp } th dport 7946 drop; "
                + "add rule \(table) output meta l4proto { tcp, udp } th dport 7946 drop")
            // Membership must really have given up on it, or the fault tests nothing. Asked with
            // consistency=local: the machine's own membership view, not the leader's (which is
            // the cut machine's here, and sees everyone else dead).
            // Every other machine, agents included (a local read on an agent was once forwarded
            // to the leader, the cut machine, and this check failed whenever it polled one).
            let other = machine == 1 ? 2 : 1
            let address = addresses[machine - 1]
            let seenGone = Testbed.eventually(timeoutSeconds: 30, intervalSeconds: 0.5) {
                (1...bed.machineCount).filter { $0 != machine }.allSatisfy { index in
                    guard let listing = try? bed.execAllowingFailure(index, "curl", "-sf", "--unix-socket", "/var/run/flotilla.sock",
                                                                     "http://localhost/flotilla/v1/machines?consistency=local"),
                          listing.succeeded else { return false }
                    struct Machines: Decodable { struct Machine: Decodable { var primaryIP: String; var state: String }; var machines: [Machine] }
                    guard let machines = try? JSONDecoder().decode(Machines.self, from: Data(listing.standardOutput.utf8)) else { return false }
                    return machines.machines.first { $0.primaryIP == address }.map { $0.state == "dead" } ?? true
                }
            }
            if !seenGone {
                // Every machine's own view and machine `other`'s recent journal, to tell a slow
                // failure detector from a refutation that got through.
                let views = (1...bed.machineCount).map { index in
                    let listing = try? bed.execAllowingFailure(index, "curl", "-s", "--max-time", "5", "--unix-socket", "/var/run/flotilla.sock",
                                                               "http://localhost/flotilla/v1/machines?consistency=local")
                    return "m\(index): \(listing?.standardOutput ?? "?")"
                }.joined(separator: "\n")
                let journal = (try? bed.execAllowingFailure(other, "journalctl", "-u", "flotillad", "--no-pager", "-n", "80").standardOutput) ?? ""
                Issue.record("gossip did not call m\(machine) dead within 30 s of the gossip cut; local views:\n\(views)\nm\(other)'s journal:\n\(journal)")
            }
            Thread.sleep(forTimeInterval: 5)
            try bed.exec(machine, "nft", "delete table \(table)")
        case .freeze5, .freeze30:
            try bed.exec(machine, "systemctl", "kill", "-s", "STOP", "flotillad.service")
            Thread.sleep(forTimeInterval: fault == .freeze5 ? 5 : 30)
            try bed.exec(machine, "systemctl", "kill", "-s", "CONT", "flotillad.service")
        }
    }
}
