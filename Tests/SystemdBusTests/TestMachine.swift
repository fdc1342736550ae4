import TestSupport
import Foundation
import SystemdBus
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// One test bed machine (Contrib/testbed) with a real systemd, booted once for a suite.
///
/// The prefix carries this process's ID, so two test runs never share machines; `down` runs
/// after the suite whatever happened in it (see `BootedMachine`).
struct TestMachine: Sendable {
    static let repositoryRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let script = repositoryRoot.appendingPathComponent("Contrib/testbed").path

    let prefix: String

    /// What this host lacks for booting machines, named for the skip message; nil if nothing.
    static let missingHostCapability: String? = {
        if getuid() != 0 { return "root (systemd-nspawn, network namespaces)" }
        for tool in ["/usr/bin/systemd-nspawn", "/usr/bin/nsenter", "/usr/sbin/ip", "/bin/busybox"] where access(tool, X_OK) != 0 {
            return "the tool \(tool)"
        }
        if access(script, X_OK) != 0 { return "Contrib/testbed" }
        return nil
    }()

    struct CommandFailed: Error, CustomStringConvertible {
        let description: String
    }

    /// Runs the test bed script; throws with its output when it fails or overruns `timeoutSeconds`.
    @discardableResult
    func testbed(_ arguments: [String], timeoutSeconds: Double = 60) throws -> String {
        try TestMachine.run([TestMachine.script] + arguments, environment: ["FLOTILLA_TESTBED_PREFIX": prefix], timeoutSeconds: timeoutSeconds)
    }

    /// Runs a command inside machine 1 (nsenter), e.g. `systemctl` or `docker`.
    @discardableResult
    func exec(_ command: String, timeoutSeconds: Double = 30) throws -> String {
        try testbed(["exec", "1", "/bin/sh", "-c", command], timeoutSeconds: timeoutSeconds)
    }

    /// PID 1 of machine 1 as the host sees it; nil when it is not running.
    func pid() -> Int32? {
        (try? testbed(["pid", "1"], timeoutSeconds: 10)).flatMap { Int32($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
    }

    /// A manager configured for machine 1: its bus is looked up anew before each connection
    /// attempt (the PID changes when the machine boots again), unit files are written through
    /// /proc/PID/root and linked from the machine's own /run.
    func manager(configure: (inout SystemdBusConfiguration) -> Void = { _ in }) throws -> SystemdManager {
        guard let pid = pid() else { throw CommandFailed(description: "machine 1 is not running") }
        let prefix = self.prefix
        var configuration = SystemdBusConfiguration(bus: .resolvedAddress({
            let probe = TestMachine(prefix: prefix)
            return probe.pid().map { "unix:path=/proc/\($0)/root/run/dbus/system_bus_socket" }
        }))
        configuration.unitFileDirectory = UnitFileDirectory(
            writePath: "/proc/\(pid)/root/run/flotilla/units", managerPath: "/run/flotilla/units")
        configuration.callTimeout = .seconds(5)
        configuration.jobTimeout = .seconds(30)
        configure(&configuration)
        return SystemdManager(configuration: configuration)
    }

    /// Runs a command through TestSupport's `ChildProcess` (output in files, not pipes: the
    /// test bed leaves daemons behind that would keep a pipe open); throws unless it exits 0.
    static func run(_ arguments: [String], environment: [String: String] = [:], timeoutSeconds: Double) throws -> String {
        let result: ChildProcess.Result
        do {
            result = try ChildProcess.run(arguments, environment: environment, timeoutSeconds: timeoutSeconds)
        } catch .timedOut {
            throw CommandFailed(description: "\(arguments.joined(separator: " ")): no result within \(timeoutSeconds) s")
        } catch {
            throw CommandFailed(description: "\(arguments[0]): \(error)")
        }
        guard result.status == 0 else {
            throw CommandFailed(description: "\(arguments.joined(separator: " ")): status \(result.status)\n\(result.standardOutput)\n\(result.standardError)")
        }
        return result.standardOutput
    }
}

/// Boots one machine before the suite it is attached to and tears the test bed down after it,
/// whatever the tests did. The machine is handed to the tests through a task-local.
struct BootedMachine: SuiteTrait, TestScoping {
    @TaskLocal static var current: TestMachine?

    var isRecursive: Bool { false }

    func provideScope(for test: Test, testCase: Test.Case?, performing function: @Sendable () async throws -> Void) async throws {
        let machine = TestMachine(prefix: "sdbus-\(getpid())")
        // The boot and the teardown wait on the test bed script for up to minutes: on a thread of
        // their own, not on one of the cooperative pool's two (CI), which every other suite needs.
        let taken = await onDedicatedThread { MachineSlots.acquire(1) }
        defer { MachineSlots.release(taken) }
        do {
            try await onDedicatedThread { try machine.testbed(["up", "1"], timeoutSeconds: 180) }
            try await BootedMachine.$current.withValue(machine) {
                try await function()
            }
        } catch {
            _ = try? await onDedicatedThread { try machine.testbed(["down"], timeoutSeconds: 120) }
            throw error
        }
        _ = try? await onDedicatedThread { try machine.testbed(["down"], timeoutSeconds: 120) }
    }
}

extension Trait where Self == BootedMachine {
    static var bootedMachine: BootedMachine { BootedMachine() }
}

/// Waits until `stream` yields a state of `unit` that satisfies `predicate`; the states seen on
/// the way are returned for the failure message. Fails after `timeout`.
func awaitState(
    _ stream: UnitStateChanges, unit: UnitName, timeout: Duration = .seconds(15),
    _ predicate: @escaping @Sendable (UnitState) -> Bool
) async throws -> [UnitState] {
    let seen = SeenStates()
    let matched = try await withThrowingTaskGroup(of: Bool.self) { group in
        group.addTask {
            for await change in stream where change.unit == unit {
                seen.append(change.state)
                if predicate(change.state) { return true }
            }
            return false
        }
        group.addTask {
            try await Task.sleep(for: timeout)
            return false
        }
        let first = try await group.next()!
        group.cancelAll()
        return first
    }
    guard matched else {
        throw TestMachine.CommandFailed(description: "no matching state of \(unit) within \(timeout); seen: \(seen.states)")
    }
    return seen.states
}

final class SeenStates: @unchecked Sendable {
    private let lock = NSLock()
    private var storage: [UnitState] = []
    func append(_ state: UnitState) { lock.withLock { storage.append(state) } }
    var states: [UnitState] { lock.withLock { storage } }
}

/// Polls `body` until it returns a value, for properties systemd does not signal (NRestarts).
func eventually<T: Sendable>(timeout: Duration = .seconds(15), _ body: () async throws -> T?) async throws -> T {
    let clock = ContinuousClock()
    let deadline = clock.now.advanced(by: timeout)
    while clock.now < deadline {
        if let value = try await body() { return value }
        try await Task.sleep(for: .milliseconds(100))
    }
    throw TestMachine.CommandFailed(description: "condition not met within \(timeout)")
}
