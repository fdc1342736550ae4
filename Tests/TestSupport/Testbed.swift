import TestSupport
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// A cluster of real machines, driven through `Contrib/testbed` (see its `help`).
///
/// Each machine is a real systemd booted by systemd-nspawn over an overlay root, in a network
/// namespace of its own; machines are numbered from 1. Every test bed has its own prefix, so test
/// processes running at the same time never share machines, addresses or state.
public struct Testbed: Sendable {
    /// The result of one run of the script.
    public struct Output: Sendable {
        public var status: Int32
        public var standardOutput: String
        public var standardError: String

        public var succeeded: Bool { status == 0 }
        public var trimmedOutput: String { standardOutput.trimmingCharacters(in: .whitespacesAndNewlines) }
    }

    /// The script failed, or did not finish within its time limit.
    public struct CommandFailure: Error, CustomStringConvertible {
        public var arguments: [String]
        public var output: Output?
        public var timedOut: Bool

        public init(arguments: [String], output: Output?, timedOut: Bool) {
            self.arguments = arguments
            self.output = output
            self.timedOut = timedOut
        }

        public var description: String {
            let command = "Contrib/testbed " + arguments.joined(separator: " ")
            if timedOut { return "\(command): no result within its time limit" }
            guard let output else { return "\(command): could not be started" }
            return "\(command): exit status \(output.status)\n"
                + "stdout: \(output.standardOutput)\nstderr: \(output.standardError)"
        }
    }

    /// The repository root, found from this file's path (Tests/TestSupport/Testbed.swift).
    public static let repositoryRoot: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent()
        .deletingLastPathComponent()
        .deletingLastPathComponent()

    public static let scriptURL: URL = repositoryRoot.appendingPathComponent("Contrib/testbed")

    /// Generous bounds: a boot of a few machines with docker takes about 3 s on the 2-core VM.
    public static let bootTimeoutSeconds: Double = 180
    public static let commandTimeoutSeconds: Double = 60

    public let prefix: String
    public let machineCount: Int

    public init(prefix: String, machineCount: Int) {
        self.prefix = prefix
        self.machineCount = machineCount
    }

    /// A prefix no other test process uses at the same time: the process ID plus a tag.
    public static func uniquePrefix(_ tag: String) -> String {
        "it\(getpid())-\(tag)"
    }

    /// What this host lacks for the test bed, named for the skip message; nil if nothing.
    public static let missingHostCapability: String? = {
        if geteuid() != 0 {
            return "root privileges (the test bed mounts, creates network namespaces and boots systemd-nspawn)"
        }
        let tools: [(path: String, what: String)] = [
            ("/usr/bin/systemd-nspawn", "systemd-nspawn (Debian: systemd-container)"),
            ("/usr/bin/nsenter", "nsenter (Debian: util-linux)"),
            ("/usr/sbin/nft", "nft (Debian: nftables)"),
            ("/usr/bin/setfattr", "setfattr (Debian: attr)"),
            ("/usr/sbin/dockerd", "dockerd (Debian: docker.io)"),
            ("/usr/bin/docker", "the docker client at /usr/bin/docker (Debian: docker.io)"),
            ("/bin/busybox", "busybox (Debian: busybox-static)"),
        ]
        for tool in tools where !FileManager.default.isExecutableFile(atPath: tool.path) {
            return tool.what
        }
        let filesystems = (try? String(contentsOfFile: "/proc/filesystems", encoding: .utf8)) ?? ""
        if !filesystems.contains("overlay") && !FileManager.default.fileExists(atPath: "/sys/module/overlay") {
            return "overlayfs in the kernel"
        }
        let cgroup2 = ["/sys/fs/cgroup/unified/cgroup.procs", "/sys/fs/cgroup/cgroup.procs"]
        if !cgroup2.contains(where: FileManager.default.fileExists(atPath:)) {
            return "a cgroup2 hierarchy"
        }
        return nil
    }()

    /// Boots `machines` machines (`options` go to `testbed up`: `--fuse`), runs `body`, and tears
    /// the test bed down afterwards even when the boot or the body failed (a failed teardown is
    /// recorded as an issue of its own).
    public static func with<Result>(
        machines: Int,
        tag: String,
        options: [String] = [],
        _ body: (Testbed) throws -> Result
    ) throws -> Result {
        // Released after the teardown below (defers run last-declared first).
        let slots = MachineSlots.acquire(machines)
        defer { MachineSlots.release(slots) }
        let bed = Testbed(prefix: uniquePrefix(tag), machineCount: machines)
        defer {
            do {
                try bed.down()
            } catch {
                Issue.record("test bed \(bed.prefix) was not torn down cleanly: \(error)")
            }
        }
        try bed.run(["up", String(machines)] + options, timeoutSeconds: bootTimeoutSeconds)
        return try body(bed)
    }

    public func down() throws {
        try run(["down"], timeoutSeconds: Self.commandTimeoutSeconds)
    }

    /// Runs a command inside machine `machine`; throws when it exits non-zero.
    @discardableResult
    public func exec(_ machine: Int, _ command: String...) throws -> String {
        try run(["exec", String(machine)] + command).trimmedOutput
    }

    /// Runs a command inside machine `machine` and returns its output and status, whatever it is.
    public func execAllowingFailure(_ machine: Int, _ command: String...) throws -> Output {
        try runAllowingFailure(["exec", String(machine)] + command)
    }

    public func address(_ machine: Int) throws -> String {
        try run(["ip", String(machine)]).trimmedOutput
    }

    public func cut(_ machine: Int, _ other: Int) throws {
        try run(["cut", String(machine), String(other)])
    }

    public func heal(_ machine: Int, _ other: Int) throws {
        try run(["heal", String(machine), String(other)])
    }

    @discardableResult
    public func run(_ arguments: [String], timeoutSeconds: Double = Self.commandTimeoutSeconds) throws -> Output {
        let output = try runAllowingFailure(arguments, timeoutSeconds: timeoutSeconds)
        guard output.succeeded else {
            throw CommandFailure(arguments: arguments, output: output, timedOut: false)
        }
        return output
    }

    /// Runs the script with `--prefix` added (through `ChildProcess`: output in files, an empty
    /// signal mask, a time limit).
    public func runAllowingFailure(
        _ arguments: [String],
        timeoutSeconds: Double = Self.commandTimeoutSeconds
    ) throws -> Output {
        // `--prefix` goes first: for `exec`, everything after the machine index is the command.
        let argv = [Self.scriptURL.path, "--prefix", prefix] + arguments
        do {
            let result = try ChildProcess.run(argv, timeoutSeconds: timeoutSeconds)
            return Output(status: result.status, standardOutput: result.standardOutput, standardError: result.standardError)
        } catch .timedOut {
            throw CommandFailure(arguments: arguments, output: nil, timedOut: true)
        } catch {
            throw CommandFailure(arguments: arguments, output: nil, timedOut: false)
        }
    }

    /// Where the repository is bound (read-only) inside every machine.
    public static let repositoryInMachine = "/opt/flotilla-src"

    /// The executable `name` built beside this test binary, as a path inside the machines.
    public static func binaryInMachine(named name: String) -> String? {
        var buffer = [UInt8](repeating: 0, count: 4_096)
        let count = buffer.withUnsafeMutableBufferPointer { pointer in
            pointer.withMemoryRebound(to: CChar.self) { readlink("/proc/self/exe", $0.baseAddress!, $0.count - 1) }
        }
        guard count > 0 else { return nil }
        let executable = URL(fileURLWithPath: String(decoding: buffer[0..<count], as: UTF8.self))
        let binary = executable.deletingLastPathComponent().appendingPathComponent(name).path
        let root = repositoryRoot.standardizedFileURL.path + "/"
        guard FileManager.default.isExecutableFile(atPath: binary), binary.hasPrefix(root) else { return nil }
        return repositoryInMachine + "/" + binary.dropFirst(root.count)
    }

    /// Polls `condition` every `intervalSeconds` until it holds or `timeoutSeconds` pass.
    public static func eventually(
        timeoutSeconds: Double,
        intervalSeconds: Double = 0.1,
        _ condition: () throws -> Bool
    ) rethrows -> Bool {
        let deadline = Date().addingTimeInterval(timeoutSeconds)
        while true {
            if try condition() { return true }
            if Date() >= deadline { return false }
            usleep(useconds_t(intervalSeconds * 1_000_000))
        }
    }
}
