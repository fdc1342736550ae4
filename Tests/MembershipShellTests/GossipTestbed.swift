import TestSupport
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Drives `Contrib/testbed` for the membership tests: a copy of the approach of
/// Tests/IntegrationTests/Testbed.swift (posix_spawn and waitpid with an empty signal mask and
/// default handlers, output to files), since Foundation's Process was seen to hang inside
/// swift-testing on this toolchain.
struct GossipTestbed: Sendable {
    struct Output: Sendable {
        var status: Int32
        var standardOutput: String
        var standardError: String
        var trimmedOutput: String { standardOutput.trimmingCharacters(in: .whitespacesAndNewlines) }
    }

    struct CommandFailure: Error, CustomStringConvertible {
        var arguments: [String]
        var output: Output?
        var timedOut: Bool

        var description: String {
            let command = "Contrib/testbed " + arguments.joined(separator: " ")
            if timedOut { return "\(command): no result within its time limit" }
            guard let output else { return "\(command): could not be started" }
            return "\(command): exit status \(output.status)\nstdout: \(output.standardOutput)\nstderr: \(output.standardError)"
        }
    }

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
        let scratch = FileManager.default.temporaryDirectory
            .appendingPathComponent("flotilla-gossip-testbed-\(prefix)-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: scratch) }
        let stdoutPath = scratch.appendingPathComponent("stdout").path
        let stderrPath = scratch.appendingPathComponent("stderr").path

        // `--prefix` first: for `exec`, everything after the machine index is the command.
        let argv = [Self.scriptPath, "--prefix", prefix] + arguments
        var fileActions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&fileActions)
        defer { posix_spawn_file_actions_destroy(&fileActions) }
        posix_spawn_file_actions_addopen(&fileActions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&fileActions, 1, stdoutPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        posix_spawn_file_actions_addopen(&fileActions, 2, stderrPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        markDescriptorsCloseOnExec()

        // The test runner's threads block signals; the child must start with an empty mask and
        // default handlers or timeouts inside the script (SIGALRM, SIGTERM) never fire.
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var emptySet = sigset_t()
        var fullSet = sigset_t()
        sigemptyset(&emptySet)
        sigfillset(&fullSet)
        posix_spawnattr_setsigmask(&attributes, &emptySet)
        posix_spawnattr_setsigdefault(&attributes, &fullSet)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

        var cArguments: [UnsafeMutablePointer<CChar>?] = argv.map { strdup($0) } + [nil]
        defer { cArguments.forEach { free($0) } }
        var pid: pid_t = 0
        guard posix_spawn(&pid, argv[0], &fileActions, &attributes, &cArguments, environ) == 0 else {
            throw CommandFailure(arguments: arguments, output: nil, timedOut: false)
        }
        var waitStatus: Int32 = 0
        let deadline = Date().addingTimeInterval(timeoutSeconds)
        while true {
            let reaped = waitpid(pid, &waitStatus, WNOHANG)
            if reaped == pid { break }
            if reaped == -1 && errno != EINTR { throw CommandFailure(arguments: arguments, output: nil, timedOut: false) }
            if Date() >= deadline {
                // Our own unreaped child: its PID cannot have been reused.
                kill(pid, SIGTERM)
                _ = waitpid(pid, &waitStatus, 0)
                throw CommandFailure(arguments: arguments, output: nil, timedOut: true)
            }
            usleep(10_000)
        }
        let exited = waitStatus & 0x7f == 0
        let status: Int32 = exited ? (waitStatus >> 8) & 0xff : 128 + (waitStatus & 0x7f)
        return Output(status: status,
                      standardOutput: (try? String(contentsOfFile: stdoutPath, encoding: .utf8)) ?? "",
                      standardError: (try? String(contentsOfFile: stderrPath, encoding: .utf8)) ?? "")
    }

    /// Polls `condition` until it holds or `timeoutSeconds` pass (on the calling thread).
    static func eventually(timeoutSeconds: Double, intervalSeconds: Double = 0.25, _ condition: () throws -> Bool) rethrows -> Bool {
        let deadline = Date().addingTimeInterval(timeoutSeconds)
        while true {
            if try condition() { return true }
            if Date() >= deadline { return false }
            usleep(useconds_t(intervalSeconds * 1_000_000))
        }
    }
}

/// Runs blocking work on a thread of its own, off the 2-thread cooperative pool that CPU-bound
/// suites may hold for minutes, so that waits and time measurements are not skewed by it.
func onOwnThread<Value: Sendable>(_ body: @escaping @Sendable () throws -> Value) async throws -> Value {
    try await withCheckedThrowingContinuation { continuation in
        let thread = Thread {
            continuation.resume(with: Result { try body() })
        }
        thread.stackSize = 8 << 20
        thread.start()
    }
}

/// The unix time in milliseconds (what flotilla-gossip stamps its lines with).
func wallClockMilliseconds() -> Int64 {
    Int64((Date().timeIntervalSince1970 * 1_000).rounded())
}
