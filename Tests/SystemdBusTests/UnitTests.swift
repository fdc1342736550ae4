import CSystemd
import Foundation
import Logging
@testable import SystemdBus
import Testing
import TestSupport

#if canImport(Glibc)
import Glibc
#endif

@Suite(.onBackgroundThreads) struct UnitNameTests {
    @Test(arguments: [
        "foo.service", "foo@bar.service", "foo@.service", "a.socket", "x-y_z:1.timer",
        "dev-disk-by\\x2dlabel.device", "-.mount", "system.slice",
        // systemd's unit_name_is_valid() allows '@' inside an instance (the prefix ends at the first).
        "a@b@c.service",
    ])
    func acceptsValidNames(_ name: String) throws {
        #expect(try UnitName(name).rawValue == name)
    }

    @Test(arguments: [
        "", "foo", "foo.unknown", ".service", "@foo.service", "foo bar.service",
        "../etc/passwd.service", "foo/bar.service", "föö.service", String(repeating: "a", count: 250) + ".service",
    ])
    func rejectsInvalidNamesBeforeTheBus(_ name: String) {
        #expect(throws: UnitNameError.self) { try UnitName(name) }
    }

    @Test(arguments: ["foo.service", "foo@bar-1.service", "1abc.service", "dev-disk-by\\x2dlabel.device", "-.mount"])
    func objectPathIsTheOneSdBusEncodes(_ name: String) throws {
        var encoded: UnsafeMutablePointer<CChar>? = nil
        #expect(sd_bus_path_encode("/org/freedesktop/systemd1/unit", name, &encoded) >= 0)
        defer { free(encoded) }
        #expect(try UnitName(name).objectPath == String(cString: encoded!))
    }

    @Test func templatesAreRecognised() throws {
        #expect(try UnitName("foo@.service").isTemplate)
        #expect(try !UnitName("foo@1.service").isTemplate)
        #expect(try UnitName("foo@1.service").suffix == "service")
    }
}

@Suite(.onBackgroundThreads) struct ErrorMappingTests {
    @Test func systemdErrorNamesBecomeTypedErrors() {
        func map(_ name: String, open: Bool = true) -> SystemdBusError {
            .fromBusError(name: name, message: "m", operation: "op", busIsOpen: open)
        }
        #expect(map("org.freedesktop.systemd1.NoSuchUnit") == .noSuchUnit(message: "m"))
        #expect(map("org.freedesktop.systemd1.UnitMasked") == .unitMasked(message: "m"))
        #expect(map("org.freedesktop.systemd1.BadUnitSetting") == .badUnitFile(name: "org.freedesktop.systemd1.BadUnitSetting", message: "m"))
        #expect(map("org.freedesktop.DBus.Error.AccessDenied") == .accessDenied(message: "m"))
        #expect(map("org.freedesktop.DBus.Error.NoReply", open: true) == .timedOut(operation: "op"))
        #expect(map("org.freedesktop.DBus.Error.NoReply", open: false) == .disconnected(reason: "m"))
        #expect(map("org.freedesktop.systemd1.JobTypeNotApplicable") == .bus(name: "org.freedesktop.systemd1.JobTypeNotApplicable", message: "m"))
    }
}

@Suite struct UnitStateChangesTests {
    let a = try! UnitName("a.service")
    let b = try! UnitName("b.service")

    @Test func aLaggingConsumerGetsEachUnitsLatestStateOnceInFirstPendingOrder() async {
        await onOwnThread {
            let stream = UnitStateChanges()
            stream.publish(UnitStateChange(unit: a, state: UnitState(load: .loaded, active: .activating, sub: "start")))
            stream.publish(UnitStateChange(unit: b, state: UnitState(load: .loaded, active: .inactive, sub: "dead")))
            stream.publish(UnitStateChange(unit: a, state: UnitState(load: .loaded, active: .active, sub: "running")))
            #expect(stream.pendingCount == 2)
            stream.finish()
            var seen: [UnitStateChange] = []
            for await change in stream { seen.append(change) }
            #expect(seen.map(\.unit) == [a, b])
            #expect(seen.first?.state.active == .active)
        }
    }

    @Test func aWaitingConsumerIsWokenAndCancellationEndsTheWait() async {
        await onOwnThread {
            let stream = UnitStateChanges()
            let consumer = Task { var iterator = stream.makeAsyncIterator(); return await iterator.next() }
            try? await Task.sleep(for: .milliseconds(50))
            stream.publish(UnitStateChange(unit: a, state: UnitState.unloaded))
            #expect(await consumer.value?.unit == a)

            let cancelled = Task { var iterator = stream.makeAsyncIterator(); return await iterator.next() }
            try? await Task.sleep(for: .milliseconds(50))
            cancelled.cancel()
            #expect(await cancelled.value == nil)
        }
    }
}

@Suite(.onBackgroundThreads) struct ReconnectBackoffTests {
    @Test func backoffDoublesFromTheMinimumAndStopsAtTheMaximum() {
        var configuration = SystemdBusConfiguration(bus: .address("unix:path=/nonexistent"))
        configuration.reconnectBackoffMin = .milliseconds(50)
        configuration.reconnectBackoffMax = .milliseconds(300)
        let manager = SystemdManager(configuration: configuration)
        #expect((1...6).map { manager.reconnectDelay(attempt: $0) } ==
                [.milliseconds(50), .milliseconds(100), .milliseconds(200), .milliseconds(300), .milliseconds(300), .milliseconds(300)])
    }
}

@Suite(.onBackgroundThreads) struct JournalLogHandlerTests {
    @Test func fieldsCarryMessagePriorityLocationAndMetadata() {
        let fields = JournalLogHandler.fields(
            level: .warning, message: "unit failed", metadata: ["unit": "a.service", "machine-id": "m1", "message": "clash"],
            label: "flotilla.agent", syslogIdentifier: "flotillad", source: "Agent",
            file: "Agent.swift", function: "step()", line: 42)
        #expect(fields.contains("MESSAGE=unit failed"))
        #expect(fields.contains("PRIORITY=4"))
        #expect(fields.contains("SYSLOG_IDENTIFIER=flotillad"))
        #expect(fields.contains("CODE_LINE=42"))
        #expect(fields.contains("UNIT=a.service"))
        #expect(fields.contains("MACHINE_ID=m1"))
        // Metadata may not overwrite the entry's own MESSAGE.
        #expect(fields.filter { $0.hasPrefix("MESSAGE=") } == ["MESSAGE=unit failed"])
    }

    @Test func fieldNamesAreWhatJournaldAccepts() {
        #expect(JournalLogHandler.fieldName("request.id") == "REQUEST_ID")
        #expect(JournalLogHandler.fieldName("_private") == "M_PRIVATE")
        #expect(JournalLogHandler.fieldName("1st") == "M1ST")
        #expect(JournalLogHandler.fieldName(String(repeating: "x", count: 100)).count == 64)
    }

    @Test func sendingWithoutAJournalFailsWithoutThrowingOrCrashing() {
        // The host has no journald (PID 1 is not systemd): libsystemd then drops the entry and
        // reports success; logging must degrade, never throw or trap.
        #expect(JournalLogHandler.send(["MESSAGE=hello"]) >= 0)
        var logger = Logger(label: "test") { JournalLogHandler(label: $0) }
        logger.logLevel = .debug
        logger.info("no crash", metadata: ["k": "v"])
    }
}

@Suite(.serialized) struct NotifyTests {
    /// sd_notify sends one datagram to $NOTIFY_SOCKET; receive it on a socket of our own.
    @Test func sdNotifyReachesTheNotifySocket() throws {
        let directory = "/tmp/sdbus-notify-\(getpid())"
        mkdir(directory, 0o700)
        defer { rmdir(directory) }
        let path = directory + "/notify.sock"
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        try #require(fd >= 0)
        defer { close(fd); unlink(path) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            _ = path.utf8CString.withUnsafeBytes { memcpy(raw.baseAddress!, $0.baseAddress!, $0.count) }
        }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        try #require(bound == 0)

        setenv("NOTIFY_SOCKET", path, 1)
        defer { unsetenv("NOTIFY_SOCKET") }
        #expect(try SystemdNotifier.notify([.ready, .status("serving\n2 units"), .watchdog, .stopping]))

        var buffer = [UInt8](repeating: 0, count: 4096)
        var timeout = timeval(tv_sec: 2, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let count = recv(fd, &buffer, buffer.count, 0)
        try #require(count > 0)
        let text = String(decoding: buffer[..<count], as: UTF8.self)
        #expect(text == "READY=1\nSTATUS=serving 2 units\nWATCHDOG=1\nSTOPPING=1")
    }

    @Test func withoutANotifySocketNotifyReportsNothingSent() throws {
        unsetenv("NOTIFY_SOCKET")
        #expect(try SystemdNotifier.notify([.ready]) == false)
        #expect(try SystemdNotifier.watchdogInterval() == nil)
    }
}

@Suite(.onBackgroundThreads) struct UnitFileWriteTests {
    @Test func writeReportsCreatedChangedAndUnchanged() throws {
        let directory = "/tmp/sdbus-units-\(getpid())-\(UInt32.random(in: 0...UInt32.max))/nested"
        var configuration = SystemdBusConfiguration(bus: .address("unix:path=/nonexistent"))
        configuration.unitFileDirectory = UnitFileDirectory(writePath: directory, managerPath: "/run/flotilla/units")
        let manager = SystemdManager(configuration: configuration)
        let unit = try UnitName("a.service")
        defer {
            _ = try? manager.removeUnitFile(unit)
            rmdir(directory)
            rmdir((directory as NSString).deletingLastPathComponent)
        }
        #expect(try manager.writeUnitFile(unit, contents: "[Service]\nExecStart=/bin/true\n") == .created)
        #expect(try manager.writeUnitFile(unit, contents: "[Service]\nExecStart=/bin/true\n") == .unchanged)
        #expect(try manager.writeUnitFile(unit, contents: "[Service]\nExecStart=/bin/false\n") == .changed)
        #expect(try String(contentsOfFile: directory + "/a.service", encoding: .utf8) == "[Service]\nExecStart=/bin/false\n")
        #expect(try manager.removeUnitFile(unit))
        #expect(try manager.removeUnitFile(unit) == false)
    }
}
