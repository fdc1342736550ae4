import Foundation
import SystemdBus
import Testing
import TestSupport

#if canImport(Glibc)
import Glibc
#endif

/// SystemdBus against a real systemd: one test bed machine booted for the whole suite, reached
/// from the host through its system bus socket, as the agent will reach it in the test bed.
@Suite(
    .serialized, .bootedMachine,
    .enabled(if: TestMachine.missingHostCapability == nil,
             "needs \(TestMachine.missingHostCapability ?? "nothing") to boot a test bed machine"))
struct MachineTests {
    var machine: TestMachine { BootedMachine.current! }

    /// Writes, links and reloads `unit` with `contents`, and watches it.
    func install(_ manager: SystemdManager, _ unit: UnitName, _ contents: String) async throws {
        _ = try manager.writeUnitFile(unit, contents: contents)
        _ = try await manager.linkUnitFiles([unit])
        try await manager.reload()
        try await manager.watch([unit])
    }

    @Test func startIsObservedActiveThroughSignalsAndStopInactive() async throws {
        try await onOwnThread {
            let manager = try machine.manager()
            try await manager.connect()
            let unit = try UnitName("sdbus-sleep.service")
            try await install(manager, unit, "[Service]\nExecStart=/bin/sleep 1000\n")
            #expect(try await manager.startUnit(unit) == .done)
            let started = try await awaitState(manager.stateChanges, unit: unit) { $0.active == .active }
            #expect(started.last == UnitState(load: .loaded, active: .active, sub: "running"))
            let properties = try await manager.unitProperties(unit)
            #expect((properties.mainPID ?? 0) > 0)
            #expect(properties.activeEnterTimestampMicroseconds > 0)

            #expect(try await manager.stopUnit(unit) == .done)
            let stopped = try await awaitState(manager.stateChanges, unit: unit) { $0.active == .inactive }
            #expect(stopped.last?.sub == "dead")
            await manager.close()
        }
    }

    @Test func aUnitNameWithAnEscapeSequenceIsTrackedByName() async throws {
        try await onOwnThread {
            let manager = try machine.manager()
            try await manager.connect()
            // systemd-escape("sdbus-a-b") for a path: the backslash must match itself.
            let unit = try UnitName("sdbus-a\\x2db.service")
            try await install(manager, unit, "[Service]\nExecStart=/bin/sleep 1000\n")
            #expect(try await manager.startUnit(unit) == .done)
            _ = try await awaitState(manager.stateChanges, unit: unit) { $0 == UnitState(load: .loaded, active: .active, sub: "running") }
            #expect(try await manager.stopUnit(unit) == .done)
            await manager.close()
        }
    }

    @Test func watchingManyUnitsAtOnceReadsTheirStates() async throws {
        try await onOwnThread {
            let manager = try machine.manager()
            try await manager.connect()
            let units = try (0..<40).map { try UnitName("sdbus-many-\($0).service") }
            for unit in units { _ = try manager.writeUnitFile(unit, contents: "[Service]\nExecStart=/bin/sleep 1000\n") }
            _ = try await manager.linkUnitFiles(units)
            try await withThrowingTaskGroup(of: JobResult.self) { group in
                for unit in units { group.addTask { try await manager.startUnit(unit) } }
                for try await result in group { #expect(result == .done) }
            }
            // More units than refreshByPatternUnitsMax: read with one ListUnits.
            try await manager.watch(units)
            let states = await manager.watchedStates()
            #expect(units.allSatisfy { states[$0] == .some(UnitState(load: .loaded, active: .active, sub: "running")) })
            try await withThrowingTaskGroup(of: JobResult.self) { group in
                for unit in units { group.addTask { try await manager.stopUnit(unit) } }
                for try await result in group { #expect(result == .done) }
            }
            await manager.close()
        }
    }

    @Test func failingExecStartShowsFailedWithItsResult() async throws {
        try await onOwnThread {
            let manager = try machine.manager()
            try await manager.connect()
            // Type=simple: the start job is done once the process runs; the unit fails after.
            let simple = try UnitName("sdbus-false.service")
            try await install(manager, simple, "[Service]\nExecStart=/bin/false\n")
            #expect(try await manager.startUnit(simple) == .done)
            let seen = try await awaitState(manager.stateChanges, unit: simple) { $0.active == .failed }
            #expect(seen.last?.sub == "failed")
            let properties = try await manager.unitProperties(simple)
            #expect(properties.result == "exit-code")
            #expect(properties.execMainStatus == 1)

            // Type=oneshot: the start job itself fails.
            let oneshot = try UnitName("sdbus-oneshot-false.service")
            try await install(manager, oneshot, "[Service]\nType=oneshot\nExecStart=/bin/false\n")
            #expect(try await manager.startUnit(oneshot) == .failed)
            // A binary that does not exist: the exec itself fails.
            let missing = try UnitName("sdbus-missing-binary.service")
            try await install(manager, missing, "[Service]\nType=oneshot\nExecStart=/nonexistent/binary\n")
            #expect(try await manager.startUnit(missing) == .failed)
            #expect(try await manager.unitProperties(missing).result == "exit-code")

            try await manager.resetFailedUnit(simple)
            _ = try await awaitState(manager.stateChanges, unit: simple) { $0.active == .inactive }
            await manager.close()
        }
    }

    @Test func restartAlwaysRestartsAndNRestartsCounts() async throws {
        try await onOwnThread {
            let manager = try machine.manager()
            try await manager.connect()
            let unit = try UnitName("sdbus-flapping.service")
            try await install(manager, unit, """
                [Unit]
                StartLimitIntervalSec=0
                [Service]
                ExecStart=/bin/sh -c 'sleep 0.2; exit 3'
                Restart=always
                RestartSec=100ms
                """)
            #expect(try await manager.startUnit(unit) == .done)
            let restarts = try await eventually { () -> UInt32? in
                let count = try await manager.unitProperties(unit).nRestarts ?? 0
                return count >= 3 ? count : nil
            }
            #expect(restarts >= 3)
            // The restart cycle is visible in the signalled states too.
            _ = try await awaitState(manager.stateChanges, unit: unit) { $0.sub == "auto-restart" }
            #expect(try await manager.stopUnit(unit) == .done)
            _ = try await awaitState(manager.stateChanges, unit: unit) { $0.active == .inactive || $0.active == .failed }
            await manager.close()
        }
    }

    @Test func changedUnitFileIsReloadedAndUnchangedIsNot() async throws {
        try await onOwnThread {
            let manager = try machine.manager()
            try await manager.connect()
            let unit = try UnitName("sdbus-versioned.service")
            func contents(_ version: Int) -> String {
                "[Service]\nExecStart=/bin/sh -c 'echo \(version) > /run/sdbus-version; exec sleep 1000'\n"
            }
            try await install(manager, unit, contents(1))
            #expect(try await manager.startUnit(unit) == .done)
            #expect(try manager.writeUnitFile(unit, contents: contents(1)) == .unchanged)
            #expect(try await manager.unitProperties(unit).needDaemonReload == false)

            #expect(try manager.writeUnitFile(unit, contents: contents(2)) == .changed)
            #expect(try await manager.unitProperties(unit).needDaemonReload == true)
            try await manager.reload()
            #expect(try await manager.unitProperties(unit).needDaemonReload == false)
            #expect(try await manager.restartUnit(unit) == .done)
            let version = try await eventually { () -> String? in
                let text = try? String(contentsOfFile: "/proc/\(machine.pid()!)/root/run/sdbus-version", encoding: .utf8)
                return text?.trimmingCharacters(in: .whitespacesAndNewlines) == "2" ? "2" : nil
            }
            #expect(version == "2")
            _ = try await manager.stopUnit(unit)
            await manager.close()
        }
    }

    @Test func dockerRunUnitWithTheLocalImageStartsAndStops() async throws {
        try await onOwnThread {
            let manager = try machine.manager()
            try await manager.connect()
            let unit = try UnitName("sdbus-box.service")
            // --init: busybox sh as PID 1 ignores SIGTERM; `rm -f` first: a killed client leaves the
            // name taken (TESTBED.md); `docker stop` makes `docker run` exit 143 (128 + SIGTERM),
            // which is how this service ends normally.
            try await install(manager, unit, """
                [Unit]
                After=docker.service
                Requires=docker.service
                [Service]
                ExecStartPre=-/usr/local/bin/docker rm -f sdbus-box
                ExecStart=/usr/local/bin/docker run --rm --init --name sdbus-box flotilla/busybox:latest sleep 1000
                ExecStop=/usr/local/bin/docker stop sdbus-box
                SuccessExitStatus=143
                """)
            #expect(try await manager.startUnit(unit) == .done)
            do {
                _ = try await awaitState(manager.stateChanges, unit: unit) { $0.active == .active }
            } catch {
                let source = JournalSource.directory("/proc/\(machine.pid()!)/root/run/log/journal")
                let journal = try await UnitJournal.lastEntries(unit: unit, count: 30, source: source).map(\.message)
                Issue.record("\(error); journal: \(journal)")
                throw error
            }
            let running = try await eventually { () -> Bool? in
                let names = try machine.exec("/usr/local/bin/docker ps --format '{{.Names}}'")
                return names.contains("sdbus-box") ? true : nil
            }
            #expect(running)
            #expect(try await manager.stopUnit(unit) == .done)
            _ = try await awaitState(manager.stateChanges, unit: unit) { $0.active == .inactive }
            let names = try machine.exec("/usr/local/bin/docker ps --format '{{.Names}}'")
            #expect(!names.contains("sdbus-box"))
            await manager.close()
        }
    }

    @Test func journalLinesOfAUnitAreReadBackAndFollowed() async throws {
        try await onOwnThread {
            let manager = try machine.manager()
            try await manager.connect()
            let unit = try UnitName("sdbus-talker.service")
            try await install(manager, unit, """
                [Service]
                ExecStart=/bin/sh -c 'for i in 1 2 3 4 5; do echo "line $i"; done; while true; do sleep 0.2; echo tick; done'
                """)
            #expect(try await manager.startUnit(unit) == .done)
            let source = JournalSource.directory("/proc/\(machine.pid()!)/root/run/log/journal")
            let lines = try await eventually { () -> [String]? in
                let entries = try await UnitJournal.lastEntries(unit: unit, count: 200, source: source)
                let messages = entries.filter { $0.fields["_SYSTEMD_UNIT"] == unit.rawValue }.map(\.message)
                return messages.contains("line 5") ? messages : nil
            }
            #expect(Array(lines.prefix(5)) == ["line 1", "line 2", "line 3", "line 4", "line 5"])
            let entries = try await UnitJournal.lastEntries(unit: unit, count: 200, source: source)
            let first = try #require(entries.first { $0.message == "line 1" })
            #expect(first.fields["_SYSTEMD_UNIT"] == unit.rawValue)
            #expect(first.priority == 6)
            #expect(first.realtimeMicroseconds > 0)
            // systemd's own message about the unit (UNIT=, _PID=1) is part of the unit's journal.
            #expect(entries.contains { $0.fields["_PID"] == "1" && $0.unit == unit.rawValue })

            // Follow: new lines arrive as they are written.
            var ticks = 0
            for try await entry in UnitJournal.follow(unit: unit, source: source, backlog: 0) where entry.message == "tick" {
                ticks += 1
                if ticks == 3 { break }
            }
            #expect(ticks == 3)
            _ = try await manager.stopUnit(unit)
            await manager.close()
        }
    }

    @Test func systemdErrorsBecomeTypedErrors() async throws {
        try await onOwnThread {
            let manager = try machine.manager()
            try await manager.connect()
            await #expect(throws: SystemdBusError.self) { try await manager.startUnit(UnitName("sdbus-no-such-unit.service")) }
            do {
                _ = try await manager.startUnit(UnitName("sdbus-no-such-unit.service"))
            } catch let error as SystemdBusError {
                guard case .noSuchUnit(let message) = error else { Issue.record("got \(error)"); return }
                #expect(message.contains("sdbus-no-such-unit.service"))
            }

            let masked = try UnitName("sdbus-masked.service")
            try machine.exec("systemctl mask --runtime sdbus-masked.service")
            do {
                _ = try await manager.startUnit(masked)
                Issue.record("a masked unit started")
            } catch SystemdBusError.unitMasked(let message) {
                #expect(message.contains("masked"))
            }

            let bad = try UnitName("sdbus-bad.service")
            try await install(manager, bad, "[Service]\nExecStart=relative/path/is/not/allowed\n")
            do {
                _ = try await manager.startUnit(bad)
                Issue.record("a unit with a bad setting started")
            } catch SystemdBusError.badUnitFile(let name, _) {
                #expect(name.hasPrefix("org.freedesktop.systemd1."))
            }
            await manager.close()
        }
    }

    @Test func enableAndDisableAUnitWithAnInstallSection() async throws {
        try await onOwnThread {
            let manager = try machine.manager()
            try await manager.connect()
            let unit = try UnitName("sdbus-installable.service")
            try await install(manager, unit, "[Service]\nExecStart=/bin/sleep 1000\n[Install]\nWantedBy=multi-user.target\n")
            let enabled = try await manager.enableUnitFiles([unit])
            #expect(enabled.carriesInstallInfo)
            #expect(enabled.changes.contains { $0.type == "symlink" && $0.file.hasSuffix("multi-user.target.wants/sdbus-installable.service") })
            let disabled = try await manager.disableUnitFiles([unit])
            #expect(disabled.contains { $0.type == "unlink" })

            let plain = try UnitName("sdbus-plain.service")
            try await install(manager, plain, "[Service]\nExecStart=/bin/sleep 1000\n")
            #expect(try await manager.enableUnitFiles([plain]).carriesInstallInfo == false)
            await manager.close()
        }
    }

    /// The helper executable (flotilla-bench-systemd) as the machine sees it: it is built next to
    /// this test bundle, and the test bed binds the repository at /opt/flotilla-src.
    func helperPathInMachine() throws -> String {
        let bundleDirectory = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent().path
        let helper = bundleDirectory + "/flotilla-bench-systemd"
        try #require(access(helper, X_OK) == 0, "swift test builds flotilla-bench-systemd next to the tests: \(helper)")
        let root = TestMachine.repositoryRoot.resolvingSymlinksInPath().path
        try #require(helper.hasPrefix(root + "/"), "the build directory is inside the repository")
        return "/opt/flotilla-src" + helper.dropFirst(root.count)
    }

    @Test func sdNotifyFromATypeNotifyServiceMakesItActiveWithItsStatus() async throws {
        try await onOwnThread {
            let helper = try helperPathInMachine()
            let manager = try machine.manager()
            try await manager.connect()
            let unit = try UnitName("sdbus-notify.service")
            try await install(manager, unit, "[Service]\nType=notify\nExecStart=\(helper) notify\n")
            // A Type=notify start job is done only after READY=1 arrived on the notify socket.
            #expect(try await manager.startUnit(unit) == .done)
            #expect(try await manager.unitProperties(unit).state.active == .active)
            let status = try machine.exec("systemctl show -p StatusText --value sdbus-notify.service")
            #expect(status.trimmingCharacters(in: .whitespacesAndNewlines) == "benchmark helper up")
            _ = try await manager.stopUnit(unit)
            await manager.close()
        }
    }

    @Test func journalLogHandlerEntriesReachTheMachinesJournalWithTheirFields() async throws {
        try await onOwnThread {
            let helper = try helperPathInMachine()
            let unit = try UnitName("sdbus-logger.service")
            // The helper logs, then stays up until stopped (see its `log` mode: an exited sender's
            // entry can lack _SYSTEMD_UNIT).
            _ = try? machine.exec("systemctl stop sdbus-logger.service; systemctl reset-failed sdbus-logger.service")
            try machine.exec("systemd-run --quiet --unit=sdbus-logger.service \(helper) log 'hello from swift-log'")
            defer { _ = try? machine.exec("systemctl stop sdbus-logger.service") }
            let source = JournalSource.directory("/proc/\(machine.pid()!)/root/run/log/journal")
            let entry = try await eventually { () -> JournalEntry? in
                try await UnitJournal.lastEntries(unit: unit, count: 50, source: source).first { $0.message == "hello from swift-log" }
            }
            #expect(entry.priority == 4)
            #expect(entry.fields["SYSLOG_IDENTIFIER"] == "flotilla-bench")
            #expect(entry.fields["UNIT"] == "sdbus-example.service")
            #expect(entry.fields["ATTEMPT"] == "3")
            #expect(entry.fields["CODE_FUNC"] != nil)
        }
    }

    @Test func cancellingAJobWaitEndsItAndTheJobGoesOn() async throws {
        try await onOwnThread {
            let manager = try machine.manager()
            try await manager.connect()
            let slow = try UnitName("sdbus-slow-cancel.service")
            try await install(manager, slow, "[Service]\nExecStartPre=/bin/sleep 10\nExecStart=/bin/sleep 1000\n")
            let clock = ContinuousClock()
            let waiting = Task(executorPreference: OwnThreadExecutor.shared) { try await manager.startUnit(slow) }
            try await Task.sleep(for: .milliseconds(300))
            let cancelledAt = clock.now
            waiting.cancel()
            await #expect(throws: CancellationError.self) { try await waiting.value }
            // Well before the job could end (ExecStartPre takes 10 s); loose for a loaded CI host.
            #expect(clock.now - cancelledAt < .seconds(8))
            _ = try await awaitState(manager.stateChanges, unit: slow, timeout: .seconds(40)) { $0.active == .active }
            #expect(try await manager.stopUnit(slow) == .done)
            await manager.close()
        }
    }

    /// fleet's `systemd_user`: the same operations against a user manager (root's, user@0),
    /// reached through `BusTarget.user`, i.e. $DBUS_SESSION_BUS_ADDRESS, here the machine's
    /// /run/user/0/bus seen from the host.
    @Test func theUserManagerRunsAUnitThroughTheUserBus() async throws {
        try await onOwnThread {
            try machine.exec("systemctl start user@0.service")
            let pid = try #require(machine.pid())
            setenv("DBUS_SESSION_BUS_ADDRESS", "unix:path=/proc/\(pid)/root/run/user/0/bus", 1)
            defer { unsetenv("DBUS_SESSION_BUS_ADDRESS") }
            let manager = try machine.manager { configuration in
                configuration.bus = .user
                configuration.unitFileDirectory = UnitFileDirectory(
                    writePath: "/proc/\(pid)/root/run/flotilla/user-units", managerPath: "/run/flotilla/user-units")
            }
            try await manager.connect()
            let unit = try UnitName("sdbus-user-sleep.service")
            try await install(manager, unit, "[Service]\nExecStart=/bin/sleep 1000\n")
            #expect(try await manager.startUnit(unit) == .done)
            _ = try await awaitState(manager.stateChanges, unit: unit) { $0.active == .active }
            let listed = try machine.exec("XDG_RUNTIME_DIR=/run/user/0 systemctl --user is-active sdbus-user-sleep.service")
            #expect(listed.trimmingCharacters(in: .whitespacesAndNewlines) == "active")
            #expect(try await manager.stopUnit(unit) == .done)
            await manager.close()
        }
    }

    @Test func killingTheMachinesDbusFailsTheCallAndTheClientRecovers() async throws {
        try await onOwnThread {
            let manager = try machine.manager { $0.reconnectBackoffMax = .milliseconds(500) }
            try await manager.connect()
            let slow = try UnitName("sdbus-slow-start.service")
            try await install(manager, slow, "[Service]\nExecStartPre=/bin/sleep 10\nExecStart=/bin/sleep 1000\n")
            let clock = ContinuousClock()
            let started = clock.now
            let job = Task(executorPreference: OwnThreadExecutor.shared) { try await manager.startUnit(slow) }
            try await Task.sleep(for: .milliseconds(300))
            // Mid-call: the start job waits for its JobRemoved while the bus daemon dies.
            try machine.exec("kill -9 $(systemctl show -p MainPID --value dbus.service)")
            await #expect(throws: SystemdBusError.self) { try await job.value }
            // Failed by the disconnect, not by the job's end (10 s) or a timeout (30 s).
            #expect(clock.now - started < .seconds(8))

            // The machine's systemd brings dbus back (socket activation); the client reconnects.
            try machine.exec("systemctl start dbus.service")
            #expect(await manager.waitUntilConnected(timeout: .seconds(20)))
            // The life cycle was reported: connected, disconnected, then connected again.
            var events: [ConnectionEvent] = []
            for await event in manager.connectionEvents {
                events.append(event)
                if case .connected(let attempt) = event, attempt > 0 { break }
            }
            #expect(events.first == .connected(attempt: 0))
            #expect(events.contains { if case .disconnected = $0 { true } else { false } })
            // A state change made while the bus was away is seen through the resync.
            _ = try await awaitState(manager.stateChanges, unit: slow, timeout: .seconds(40)) { $0.active == .active }
            #expect(try await manager.stopUnit(slow) == .done)
            await manager.close()
        }
    }

    @Test func killingTheMachinesSystemdFailsTheCallAndTheClientRecovers() async throws {
        try await onOwnThread {
            let manager = try machine.manager { $0.reconnectBackoffMax = .milliseconds(500) }
            try await manager.connect()
            let slow = try UnitName("sdbus-slow-start-2.service")
            try await install(manager, slow, "[Service]\nExecStartPre=/bin/sleep 3\nExecStart=/bin/sleep 1000\n")
            let job = Task(executorPreference: OwnThreadExecutor.shared) { try await manager.startUnit(slow) }
            try await Task.sleep(for: .milliseconds(300))
            try machine.testbed(["kill", "1"])
            await #expect(throws: SystemdBusError.self) { try await job.value }
            #expect(await manager.isConnected == false)

            try machine.testbed(["start", "1"], timeoutSeconds: 120)
            #expect(await manager.waitUntilConnected(timeout: .seconds(30)))
            // The new boot has the old upper dir: the unit file is still there, under a new PID.
            let status = try await manager.listUnitsByNames([slow])
            #expect(status.first?.state.load == .loaded || status.first?.state.load == .notFound)
            await manager.close()
        }
    }
}
