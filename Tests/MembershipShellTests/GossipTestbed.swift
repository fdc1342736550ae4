import TestSupport
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Drives `Contrib/testbed` for the membership tests: machines without docker, through
/// TestSupport's `Testbed` runner (posix_spawn with an empty signal mask, output to files).
struct GossipTestbed: Sendable {
    typealias Output = Testbed.Output
    typealias CommandFailure = Testbed.CommandFailure

    /// The repository root, from this file's path (Tests/MembershipShellTests/GossipTestbed.swift).
    static let repositoryRoot: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let scriptPath = repositoryRoot.appendingPathComponent("Contrib/testbed").path
    /// Where the script binds the repository inside every machine (read-only).
    static let repositoryInMachine = "/opt/flotilla-src"

    /// What this host lacks for a test bed without docker; nil if nothing.
    static let missingHostCapability: String? = {
        if geteuid() != 0 { return "root privileges" }
        for tool in ["/usr/bin/systemd-nspawn", "/usr/bin/nsenter", "/usr/sbin/nft", "/usr/bin/setfattr"]
        where !FileManager.default.isExecutableFile(atPath: tool) {
            return tool
        }
        let cgroup2 = ["/sys/fs/cgroup/unified/cgroup.procs", "/sys/fs/cgroup/cgroup.procs"]
        if !cgroup2.contains(where: FileManager.default.fileExists(atPath:)) { return "a cgroup2 hierarchy" }
        return nil
    }()

    let prefix: String

    /// Boots `machines` machines without docker, runs `body`, and always tears the bed down.
    static func with<Result>(prefix: String, machines: Int, _ body: (GossipTestbed) throws -> Result) throws -> Result {
        // Released after the teardown below (defers run last-declared first).
        let slots = MachineSlots.acquire(machines)
        defer { MachineSlots.release(slots) }
        let bed = GossipTestbed(prefix: prefix)
        // A bed left over by a run that was killed: `down` is idempotent.
        _ = try? bed.runAllowingFailure(["down"], timeoutSeconds: 120)
        defer {
            do {
                try bed.run(["down"], timeoutSeconds: 120)
            } catch {
                Issue.record("test bed \(prefix) was not torn down cleanly: \(error)")
            }
        }
        try bed.run(["up", String(machines), "--no-docker"], timeoutSeconds: 300)
        return try body(bed)
    }

    @discardableResult
    func run(_ arguments: [String], timeoutSeconds: Double = 60) throws -> Output {
        let output = try runAllowingFailure(arguments, timeoutSeconds: timeoutSeconds)
        guard output.status == 0 else { throw CommandFailure(arguments: arguments, output: output, timedOut: false) }
        return output
    }

    @discardableResult
    func exec(_ machine: Int, _ command: [String]) throws -> String {
        try run(["exec", String(machine)] + command).trimmedOutput
    }

    func address(_ machine: Int) throws -> String {
        try run(["ip", String(machine)]).trimmedOutput
    }

    func runAllowingFailure(_ arguments: [String], timeoutSeconds: Double = 60) throws -> Output {
        try Testbed(prefix: prefix, machineCount: 0).runAllowingFailure(arguments, timeoutSeconds: timeoutSeconds)
    }

    static func eventually(timeoutSeconds: Double, intervalSeconds: Double = 0.25, _ condition: () throws -> Bool) rethrows -> Bool {
        try Testbed.eventually(timeoutSeconds: timeoutSeconds, intervalSeconds: intervalSeconds, condition)
    }
}

/// The unix time in milliseconds (what flotilla-gossip stamps its lines with).
func wallClockMilliseconds() -> Int64 {
    Int64((Date().timeIntervalSince1970 * 1_000).rounded())
}
