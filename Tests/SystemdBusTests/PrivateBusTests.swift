import TestSupport
import Foundation
@testable import SystemdBus
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// A dbus-daemon of our own on a unix socket under /tmp, with no systemd on it: enough to check
/// that connection failures end calls quickly and cleanly, without a machine.
final class PrivateBus: @unchecked Sendable {
    let directory: String
    let address: String
    private let pid: pid_t

    static let missingHostCapability: String? =
        access("/usr/bin/dbus-daemon", X_OK) == 0 ? nil : "dbus-daemon (Debian: dbus-daemon)"

    /// `dropsReplies`: the policy lets no reply through, so every call goes unanswered.
    init(dropsReplies: Bool = false) throws {
        directory = "/tmp/sdbus-bus-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        mkdir(directory, 0o700)
        let socketPath = directory + "/bus"
        address = "unix:path=" + socketPath
        let config = """
            <!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
             "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
            <busconfig>
              <type>session</type>
              <listen>\(address)</listen>
              <auth>EXTERNAL</auth>
              <policy context="default">
                <allow send_destination="*"/>
                <allow own="*"/>
                \(dropsReplies ? "" : "<allow receive_sender=\"*\"/>")
              </policy>
            </busconfig>
            """
        try config.write(toFile: directory + "/bus.conf", atomically: true, encoding: .utf8)
        var spawned: pid_t = 0
        let arguments: [String] = ["/usr/bin/dbus-daemon", "--config-file=\(directory)/bus.conf", "--nofork", "--nopidfile", "--nosyslog"]
        let argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        markDescriptorsCloseOnExec()
        let rc = posix_spawn(&spawned, arguments[0], &actions, nil, argv, environ)
        guard rc == 0 else { throw SystemdBusError.system(operation: "posix_spawn dbus-daemon", errno: rc) }
        pid = spawned
        // Ready once a connect succeeds: dbus-daemon creates the socket file at bind() and
        // listens a moment later, and a connect in between is refused (on a starved host that
        // moment was long enough: "Connection refused" in a fresh-clone run, where the wait was
        // for the file to exist). Bounded: a daemon that never listens fails the test below.
        // The wait stops at the first accepted connect. It once read `for _ in 0..<6_000 where
        // !accepts(...)`, which filters and never stops: it went on connecting 6,000 times once
        // the daemon listened, and dbus-daemon answers connections in order, so the test's own
        // came after thousands of probes: 2.6 s per test at load 12 to 19, over the 2 s connect
        // timeout in soak run 6 ("connecting took longer than 2.0 seconds"; strace: 6,000 accepts).
        var attempts = 0
        while attempts < 6_000 && !Self.accepts(socketPath) {
            attempts += 1
            usleep(10_000)
        }
    }

    /// Whether a unix-socket connect to `path` succeeds now.
    static func accepts(_ path: String) -> Bool {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else { return false }
        withUnsafeMutableBytes(of: &address.sun_path) { buffer in
            for (index, byte) in bytes.enumerated() { buffer[index] = byte }
        }
        return withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) == 0
            }
        }
    }

    /// SIGKILLs the daemon this object started (its recorded PID, never by name).
    func kill() {
        _ = Glibc.kill(pid, SIGKILL)
        var status: Int32 = 0
        waitpid(pid, &status, 0)
    }

    deinit {
        kill()
        unlink(directory + "/bus")
        unlink(directory + "/bus.conf")
        rmdir(directory)
    }
}

@Suite(.enabled(if: PrivateBus.missingHostCapability == nil, "needs \(PrivateBus.missingHostCapability ?? "")"))
struct ConnectionFailureTests {
    func configuration(_ address: String) -> SystemdBusConfiguration {
        var configuration = SystemdBusConfiguration(bus: .address(address))
        configuration.callTimeout = .seconds(2)
        configuration.connectTimeout = .seconds(2)
        return configuration
    }

    @Test func connectingToAMissingSocketFailsAtOnceWithItsErrno() async throws {
        try await onOwnThread {
            let manager = SystemdManager(configuration: configuration("unix:path=/tmp/sdbus-no-such-dir/bus"))
            do {
                try await manager.connect()
                Issue.record("connected to nothing")
            } catch SystemdBusError.system(_, let code) {
                #expect(code == ENOENT)
            }
            #expect(await manager.isConnected == false)
        }
    }

    @Test func aBusWithoutSystemdFailsTheConnectWithTheBusError() async throws {
        try await onOwnThread {
            let bus = try PrivateBus()
            let manager = SystemdManager(configuration: configuration(bus.address))
            let clock = ContinuousClock()
            let start = clock.now
            do {
                try await manager.connect()
                Issue.record("connected without a systemd")
            } catch SystemdBusError.bus(let name, _) {
                #expect(name == "org.freedesktop.DBus.Error.ServiceUnknown")
            }
            // The error name proves it was answered, not timed out; the time only bounds a hang.
            #expect(clock.now - start < .seconds(10))
        }
    }

    @Test func aCallThatGetsNoAnswerTimesOut() async throws {
        try await onOwnThread {
            let bus = try PrivateBus(dropsReplies: true)
            var configuration = configuration(bus.address)
            configuration.callTimeout = .milliseconds(500)
            configuration.connectTimeout = .seconds(10)
            let manager = SystemdManager(configuration: configuration)
            let clock = ContinuousClock()
            let start = clock.now
            await #expect(throws: SystemdBusError.timedOut(operation: "Subscribe")) { try await manager.connect() }
            // The configured 0.5 s, not sd-bus's default 25 s; loose for a loaded CI host.
            #expect(clock.now - start < .seconds(10))
        }
    }

    @Test func callsWithoutAConnectionFailWithNotConnected() async throws {
        await onOwnThread {
            let manager = SystemdManager(configuration: configuration("unix:path=/tmp/sdbus-no-such-dir/bus"))
            await #expect(throws: SystemdBusError.notConnected) { try await manager.reload() }
            await #expect(throws: SystemdBusError.notConnected) { try await manager.startUnit(UnitName("a.service")) }
        }
    }

    @Test func aBusThatDiesDuringTheConnectFailsItWithoutAHang() async throws {
        try await onOwnThread {
            let bus = try PrivateBus()
            // A name nobody owns makes the daemon try to activate it; meanwhile the daemon dies.
            let manager = SystemdManager(configuration: configuration(bus.address))
            let connecting = Task(executorPreference: OwnThreadExecutor.shared) { try await manager.connect() }
            bus.kill()
            let clock = ContinuousClock()
            let start = clock.now
            await #expect(throws: SystemdBusError.self) { try await connecting.value }
            #expect(clock.now - start < .seconds(10))
        }
    }

    @Test func closeEndsTheStateStream() async throws {
        await onOwnThread {
            let manager = SystemdManager(configuration: configuration("unix:path=/tmp/sdbus-no-such-dir/bus"))
            let consumer = Task { () -> Int in
                var count = 0
                for await _ in manager.stateChanges { count += 1 }
                return count
            }
            await manager.close()
            #expect(await consumer.value == 0)
        }
    }
}
