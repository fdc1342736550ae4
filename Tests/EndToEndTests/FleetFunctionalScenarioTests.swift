import Foundation
import Testing
import TestSupport

/// fleet's functional scenarios beyond scheduling, replayed on test-bed machines: unit actions
/// (functional/unit_action_test.go), the machines API (machines_test.go), metadata
/// (metadata_test.go), a daemon's shutdown (shutdown_test.go, node_test.go) and a member that
/// goes away or reboots (cluster_test.go). flotillactl drives the HTTP API as fleetctl does; the
/// machines API is driven with curl, as fleet's test drove it with Go's plain HTTP client. What
/// runs where is read from each machine's own systemd.
///
/// Left out: fleetctl's `ssh` and `--tunnel` (Flotilla serves `status` and `journal` through the
/// API instead of SSH, checked here), and TestShutdownVsMonitor's etcd health monitor (Flotilla
/// has none; the same stop is checked while the machine is cut off from the others).
@Suite(
    "fleet's functional scenarios on the test bed",
    .enabled(if: FlotillaCluster.missingCapability == nil,
             Comment(rawValue: "this host lacks \(FlotillaCluster.missingCapability ?? "nothing")"))
)
struct FleetFunctionalScenarioTests {
    /// fleet's fixtures hello.service and hello@.service, in /tmp/fx on machine 1.
    static let hello = "[Service]\nExecStart=/bin/bash -c \"while true; do echo Hello, World!; sleep 1; done\"\n"
    static let helloTemplate = "[Service]\nExecStart=/bin/bash -c \"while true; do echo Hello, World %i!; sleep 1; done\"\n"

    func write(_ cluster: FlotillaCluster, _ path: String, _ text: String, machine: Int = 1) throws {
        try cluster.bed.exec(machine, "sh", "-c", "mkdir -p \"$(dirname \(path))\" && cat > \(path) <<'UNIT'\n\(text)UNIT")
    }

    func lines(_ output: String) -> [String] {
        output.split(separator: "\n").map { String($0).trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }

    /// fleet's WaitForNUnitFiles / WaitForNUnits / WaitForNActiveUnits: polls until the listing
    /// has exactly `count` rows (active ones for `activeOnly`), and returns the unit names.
    func waitForListing(_ cluster: FlotillaCluster, unitFiles: Bool = false, activeOnly: Bool = false,
                        count: Int) throws -> [String] {
        var names: [String] = []
        let arguments = unitFiles
            ? ["list-unit-files", "--no-legend", "--full", "--fields=unit,dstate,state"]
            : ["list-units", "--no-legend", "--full", "--fields=unit,active,machine"]
        let reached = try Testbed.eventually(timeoutSeconds: 30, intervalSeconds: 0.25) {
            let output = try cluster.bed.exec(1, [cluster.control] + arguments)
            let rows = lines(output).map { $0.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init) }
            names = rows.filter { !activeOnly || ($0.count > 1 && $0[1] == "active") }.map { $0[0] }
            return names.count == count
        }
        #expect(reached, "wanted \(count) rows, listed \(names)")
        return names
    }

    func checkedCtl(_ cluster: FlotillaCluster, _ arguments: [String]) throws {
        let output = try cluster.bed.runAllowingFailure(["exec", "1", cluster.control] + arguments)
        #expect(output.succeeded, "\(arguments): \(output.standardOutput) \(output.standardError)")
        // fleet's launchUnitsCmd also failed on "Error" anywhere in stderr.
        #expect(!output.standardError.contains("Error"), "\(arguments): \(output.standardError)")
    }

    /// unit_action_test.go on one cluster: submit/load/start of template instances by path, the
    /// undoing command, the same again (identical bodies are no error), --replace for each,
    /// cat, status, journal and list-unit-files' order.
    @Test func unitActions() async throws {
        try await onOwnThread {
            try FlotillaCluster.with(machines: 3, tag: "fleetua") { cluster in
                try write(cluster, "/tmp/fx/hello.service", Self.hello)
                try write(cluster, "/tmp/fx/hello@.service", Self.helloTemplate)

                // TestUnitRunnable.
                try checkedCtl(cluster, ["start", "/tmp/fx/hello.service"])
                #expect(try waitForListing(cluster, activeOnly: true, count: 1) == ["hello.service"])
                // TestUnitSSHActions, through the API: status and journal from the unit's machine.
                let status = try cluster.ctl(1, "status", "hello.service")
                #expect(status.contains("Active: active"), "\(status)")
                var journal = ""
                #expect(try Testbed.eventually(timeoutSeconds: 30) {
                    journal = try cluster.ctl(1, "journal", "hello.service")
                    return journal.contains("Hello, World!")
                }, "journal: \(journal)")
                try checkedCtl(cluster, ["destroy", "hello.service"])
                _ = try waitForListing(cluster, count: 0)

                // TestUnitSubmit, TestUnitLoad, TestUnitStart: instances made from the template
                // beside the named files, checked with the listing each command changes.
                let cases: [(command: String, undo: String, count: Int, unitFiles: Bool, activeOnly: Bool)] = [
                    ("submit", "destroy", 9, true, false), ("load", "unload", 6, false, false), ("start", "stop", 3, false, true),
                ]
                for step in cases {
                    let names = (1...step.count).map { "hello@\($0).service" }
                    for _ in 0..<2 {
                        try checkedCtl(cluster, [step.command] + names.map { "/tmp/fx/\($0)" })
                        let listed = try waitForListing(cluster, unitFiles: step.unitFiles, activeOnly: step.activeOnly, count: step.count)
                        #expect(Set(listed) == Set(names), "\(step.command): \(listed)")
                        // Again with the same bodies: no error, nothing changes.
                        try checkedCtl(cluster, [step.command] + names.map { "/tmp/fx/\($0)" })
                        for name in names { try checkedCtl(cluster, [step.undo, name]) }
                        _ = try waitForListing(cluster, unitFiles: step.unitFiles, activeOnly: step.activeOnly, count: 0)
                    }
                    for name in names { _ = try cluster.ctlAllowingFailure(1, "destroy", name) }
                    _ = try waitForListing(cluster, unitFiles: true, count: 0)
                }

                // TestUnitSubmitReplace, TestUnitLoadReplace, TestUnitStartReplace: a new body
                // under the same name with --replace; cat shows it, and a loaded or launched unit
                // is back in its state with it.
                let changed = Self.hello.replacingOccurrences(of: "sleep 1", with: "sleep 2")
                for step in cases {
                    let names = (1...step.count).map { "hello@\($0).service" }
                    try checkedCtl(cluster, [step.command] + names.map { "/tmp/fx/\($0)" })
                    _ = try waitForListing(cluster, unitFiles: step.unitFiles, activeOnly: step.activeOnly, count: step.count)
                    for name in names {
                        let before = try cluster.ctl(1, "cat", name)
                        try write(cluster, "/tmp/\(name)", changed)
                        try checkedCtl(cluster, [step.command, "--replace", "/tmp/\(name)"])
                        _ = try waitForListing(cluster, unitFiles: step.unitFiles, activeOnly: step.activeOnly, count: step.count)
                        let after = try cluster.ctl(1, "cat", name)
                        #expect(after != before && after.contains("sleep 2"), "\(step.command) --replace \(name): \(after)")
                    }
                    if step.command == "start" {
                        // The running units run the new body.
                        for name in names {
                            let machines = try cluster.machinesRunning(name)
                            #expect(machines.count == 1, "\(name) on \(machines)")
                            if let machine = machines.first {
                                let line = try cluster.property(machine, name, "ExecStart")
                                #expect(line.contains("sleep 2"), "\(name): \(line)")
                            }
                        }
                    }
                    for name in names { try checkedCtl(cluster, ["destroy", name]) }
                    _ = try waitForListing(cluster, unitFiles: true, count: 0)
                }

                // TestUnitCat: cat gives back the submitted file.
                try checkedCtl(cluster, ["submit", "/tmp/fx/hello.service"])
                #expect(try cluster.ctl(1, "cat", "hello.service") == Self.hello.trimmingCharacters(in: .whitespacesAndNewlines))
                // TestUnitStatus: a loaded unit's status.
                try checkedCtl(cluster, ["load", "hello.service"])
                _ = try waitForListing(cluster, count: 1)
                let loaded = try cluster.ctlAllowingFailure(1, "status", "hello.service")
                #expect(loaded.standardOutput.contains("Loaded: loaded"), "\(loaded.standardOutput)")
                try checkedCtl(cluster, ["destroy", "hello.service"])

                // TestListUnitFilesOrder: twenty submits, one each, listed in name order.
                let twenty = (1...20).map { String(format: "hello@%02d.service", $0) }
                for name in twenty { try checkedCtl(cluster, ["submit", "/tmp/fx/\(name)"]) }
                _ = try waitForListing(cluster, unitFiles: true, count: 20)
                #expect(lines(try cluster.ctl(1, "list-unit-files", "--no-legend", "--fields", "unit")) == twenty.sorted())
            }
        }
    }

    /// One HTTP exchange inside machine 1 over its API socket: status, content type, body.
    func request(_ cluster: FlotillaCluster, _ method: String, _ path: String, body: String? = nil)
        throws -> (status: String, contentType: String, body: String)
    {
        var command = ["curl", "-s", "-o", "/tmp/response", "-w", "%{http_code} %{content_type}", "-X", method,
                       "--unix-socket", "/var/run/flotilla.sock"]
        if let body { command += ["-H", "Content-Type: application/json", "--data-binary", body] }
        let written = try cluster.bed.exec(1, command + ["http://localhost\(path)"])
        let parts = written.split(separator: " ", maxSplits: 1).map(String.init)
        let text = try cluster.bed.exec(1, "cat", "/tmp/response")
        return (parts.first ?? "", parts.count > 1 ? parts[1] : "", text)
    }

    /// machines_test.go and metadata_test.go: every machine starts with `hostname=smoke<ID>` and
    /// `ram=1024`, as fleet's test cluster did.
    @Test func machinesAndMetadata() async throws {
        try await onOwnThread {
            let metadata: (Testbed, Int) throws -> [String] = { bed, machine in
                let id = try bed.exec(machine, "cat", "/etc/machine-id")
                return ["--metadata=hostname=smoke\(id),ram=1024"]
            }
            try FlotillaCluster.with(machines: 3, tag: "fleetmd", daemonArguments: metadata) { cluster in
                let ids = try (1...3).map { try cluster.bed.exec($0, "cat", "/etc/machine-id") }

                // TestMachinesList and its bad page token.
                let list = try request(cluster, "GET", "/fleet/v1/machines")
                #expect(list.status == "200" && list.contentType.contains("application/json"), "\(list)")
                let badToken = try request(cluster, "GET", "/fleet/v1/machines?nextPageToken=EwBMLg==")
                #expect(badToken.status == "400" && badToken.contentType.contains("application/json"), "\(badToken)")

                // TestMachinesPatchAddModify, then testMachinesPatchDelete.
                func machines() throws -> [String: [String: String]] {
                    struct Page: Decodable { struct Machine: Decodable { let id: String; let metadata: [String: String]? }; let machines: [Machine] }
                    let page = try JSONDecoder().decode(Page.self, from: Data(request(cluster, "GET", "/fleet/v1/machines").body.utf8))
                    return Dictionary(uniqueKeysWithValues: page.machines.map { ($0.id, $0.metadata ?? [:]) })
                }
                let add = #"[{"op":"add","path":"/\#(ids[0])/metadata/foo","Value":{"value":"bar"}},"#
                    + #"{"op":"replace","path":"/\#(ids[1])/metadata/ping","Value":{"value":"splat"}}]"#
                let patched = try request(cluster, "PATCH", "/fleet/v1/machines", body: add)
                #expect(patched.status == "204" && patched.contentType.contains("application/json"), "\(patched)")
                var seen = try machines()
                #expect(seen[ids[0]] == ["foo": "bar", "hostname": "smoke\(ids[0])", "ram": "1024"], "\(seen)")
                #expect(seen[ids[1]] == ["ping": "splat", "hostname": "smoke\(ids[1])", "ram": "1024"], "\(seen)")
                let remove = #"[{"op":"remove","path":"/\#(ids[0])/metadata/foo","Value":{"value":""}},"#
                    + #"{"op":"remove","path":"/\#(ids[1])/metadata/ping","Value":{"value":""}}]"#
                #expect(try request(cluster, "PATCH", "/fleet/v1/machines", body: remove).status == "204")
                seen = try machines()
                #expect(seen[ids[0]] == ["hostname": "smoke\(ids[0])", "ram": "1024"], "\(seen)")
                #expect(seen[ids[1]] == ["hostname": "smoke\(ids[1])", "ram": "1024"], "\(seen)")

                // TestMachinesPatchBad: a bad operation, a bad path, a bad value: 400, in JSON.
                for bad in [
                    #"[{"op":"noop","path":"/\#(ids[0])/metadata/foo","Value":{"value":"bar"}}]"#,
                    #"[{"op":"add","path":"/\#(ids[0])/foo","Value":{"value":"bar"}}]"#,
                    #"[{"op":"add","path":"/\#(ids[0])/foo","Value":{"value":""}}]"#,
                ] {
                    let refused = try request(cluster, "PATCH", "/fleet/v1/machines", body: bad)
                    #expect(refused.status == "400" && refused.contentType.contains("application/json"), "\(bad): \(refused)")
                }
                #expect(try machines()[ids[0]] == ["hostname": "smoke\(ids[0])", "ram": "1024"])

                // TestTemplatesWithSpecifiersInMetadata: MachineMetadata=hostname=%i puts each
                // instance on the machine its name names, started in backward order.
                try write(cluster, "/tmp/fx/metadata@.service",
                          Self.helloTemplate + "\n[X-Fleet]\nMachineMetadata=hostname=%i\n")
                try checkedCtl(cluster, ["submit", "/tmp/fx/metadata@.service"])
                for machine in [3, 2, 1] { try checkedCtl(cluster, ["start", "/tmp/fx/metadata@smoke\(ids[machine - 1]).service"]) }
                _ = try waitForListing(cluster, activeOnly: true, count: 3)
                for machine in 1...3 {
                    #expect(try cluster.machinesRunning("metadata@smoke\(ids[machine - 1]).service") == [machine])
                }
                // No machine has hostname=invalid: fleetctl gives up after its block attempts.
                let invalid = try cluster.ctlAllowingFailure(1, "start", "--block-attempts=20", "/tmp/fx/metadata@invalid.service")
                #expect(!invalid.succeeded, "metadata@invalid was reported started: \(invalid.standardOutput)")
                #expect(try cluster.machinesRunning("metadata@invalid.service").isEmpty)
                for machine in 1...3 { try checkedCtl(cluster, ["destroy", "metadata@smoke\(ids[machine - 1]).service"]) }
                try checkedCtl(cluster, ["destroy", "metadata@invalid.service", "metadata@.service"])

                // TestMetadataOperator on the real cluster, one case of each outcome per operator
                // family (the whole table is SchedulingTests' fleetsMetadataOperatorTable).
                for (requirement, schedules) in [("ram>1023", true), ("ram!=1025", true), ("ram==1024", true),
                                                 ("ram<1024", false), ("ram>=1025", false)] {
                    try write(cluster, "/tmp/metadata-op.service",
                              Self.hello + "\n[X-Fleet]\nMachineMetadata=\"\(requirement)\"\n")
                    try checkedCtl(cluster, ["start", "--no-block", "/tmp/metadata-op.service"])
                    if schedules {
                        _ = try waitForListing(cluster, activeOnly: true, count: 1)
                    } else {
                        // What must not happen: give it the time a unit takes to start here, many times over.
                        Thread.sleep(forTimeInterval: 3)
                        #expect(try waitForListing(cluster, activeOnly: true, count: 0).isEmpty, "\(requirement)")
                    }
                    #expect(try cluster.machinesRunning("metadata-op.service").count == (schedules ? 1 : 0), "\(requirement)")
                    try checkedCtl(cluster, ["destroy", "metadata-op.service"])
                    _ = try waitForListing(cluster, unitFiles: true, count: 0)
                }
            }
        }
    }

    /// shutdown_test.go, node_test.go and cluster_test.go on four machines (three voters, one agent).
    @Test func shutdownsAndLostMembers() async throws {
        try await onOwnThread {
            try FlotillaCluster.with(machines: 4, tag: "fleetnd") { cluster in
                func machineCount(from machine: Int) throws -> Int {
                    let output = try cluster.ctlAllowingFailure(machine, "list-machines", "--no-legend")
                    return output.succeeded ? lines(output.standardOutput).count : -1
                }
                func stoppedCleanly(_ machine: Int) throws -> Bool {
                    try cluster.property(machine, "flotillad.service", "ActiveState") == "inactive"
                        && cluster.property(machine, "flotillad.service", "Result") == "success"
                }
                func rejoin(_ machine: Int) throws {
                    try cluster.startDaemon(machine)
                    #expect(try Testbed.eventually(timeoutSeconds: 60, intervalSeconds: 0.25) { try machineCount(from: 1) == 4 },
                            "m\(machine) did not rejoin: \((try? cluster.diagnostics()) ?? "")")
                }

                // TestShutdown: a stopped flotillad ends cleanly.
                try cluster.bed.exec(4, "systemctl", "stop", "flotillad.service")
                #expect(try stoppedCleanly(4))
                try rejoin(4)

                // TestNodeShutdown: a unit pinned to machine 4; its flotillad stops: the machine
                // leaves the list, the unit is no longer active anywhere, and machine 4's own
                // systemd stopped it (its lease ran out).
                let id4 = try cluster.bed.exec(4, "cat", "/etc/machine-id")
                try write(cluster, "/tmp/fx/pin@.service", Self.hello + "\n[X-Fleet]\nMachineID=%i\n")
                let pinned = "pin@\(id4).service"
                try checkedCtl(cluster, ["start", "/tmp/fx/\(pinned)"])
                #expect(try cluster.machinesRunning(pinned) == [4])
                try cluster.bed.exec(4, "systemctl", "stop", "flotillad.service")
                #expect(try stoppedCleanly(4))
                #expect(try Testbed.eventually(timeoutSeconds: 30, intervalSeconds: 0.25) { try machineCount(from: 1) == 3 })
                _ = try waitForListing(cluster, activeOnly: true, count: 0)
                #expect(try Testbed.eventually(timeoutSeconds: 30, intervalSeconds: 0.25) { try cluster.machinesRunning(pinned).isEmpty })
                // Back again, the machine runs its pinned unit again.
                try rejoin(4)
                #expect(try Testbed.eventually(timeoutSeconds: 30, intervalSeconds: 0.25) { try cluster.machinesRunning(pinned) == [4] })
                try checkedCtl(cluster, ["destroy", pinned, "pin@.service"])

                // TestDynamicClusterNewMemberUnitMigration: three conflicting units on four
                // machines; the flotillad of one unit's machine stops: that unit moves to the free
                // machine, and the other two neither move nor restart.
                let conflicts = (0..<3).map { "conflict.\($0).service" }
                for name in conflicts {
                    try write(cluster, "/tmp/fx/\(name)", Self.hello + "\n[X-Fleet]\nConflicts=conflict.*\n")
                }
                try checkedCtl(cluster, ["start"] + conflicts.map { "/tmp/fx/\($0)" })
                #expect(lines(try cluster.ctl(1, "list-units", "--no-legend")).count == 3)
                _ = try waitForListing(cluster, activeOnly: true, count: 3)
                func placement() throws -> [String: [Int]] {
                    Dictionary(uniqueKeysWithValues: try conflicts.map { ($0, try cluster.machinesRunning($0)) })
                }
                let before = try placement()
                #expect(before.values.allSatisfy { $0.count == 1 } && Set(before.values.flatMap { $0 }).count == 3, "\(before)")
                guard let lost = before["conflict.1.service"]?.first,
                      let free = (1...4).first(where: { machine in !before.values.contains([machine]) }) else { return }
                let others = ["conflict.0.service", "conflict.2.service"]
                let pids = try others.map { try cluster.property(before[$0]![0], $0, "MainPID") }
                try cluster.bed.exec(lost, "systemctl", "stop", "flotillad.service")
                let observer = lost == 1 ? 2 : 1
                #expect(try Testbed.eventually(timeoutSeconds: 30, intervalSeconds: 0.25) { try machineCount(from: observer) == 3 })
                #expect(try Testbed.eventually(timeoutSeconds: 30, intervalSeconds: 0.25) {
                    try cluster.machinesRunning("conflict.1.service") == [free]
                }, "conflict.1 did not move from m\(lost) to m\(free): \((try? placement()) ?? [:])")
                #expect(try others.map { try cluster.machinesRunning($0) } == others.map { before[$0]! }, "churn: \((try? placement()) ?? [:])")
                #expect(try others.map { try cluster.property(before[$0]![0], $0, "MainPID") } == pids, "a unit restarted")
                try rejoin(lost)

                // TestDynamicClusterMemberReboot: a machine holding one of them reboots (a clean
                // power-off, then a boot). Its unit moves to the one machine without a conflict;
                // back, the machine joins again; the other two never restarted.
                let running = try placement()
                let rebooted = running["conflict.0.service"]![0]
                let stay = ["conflict.1.service", "conflict.2.service"]
                let stayPIDs = try stay.map { try cluster.property(running[$0]![0], $0, "MainPID") }
                try cluster.bed.run(["poweroff", String(rebooted)])
                let target = (1...4).first { machine in machine != rebooted && !running.values.contains([machine]) }
                #expect(try Testbed.eventually(timeoutSeconds: 30, intervalSeconds: 0.25) {
                    try cluster.machinesRunning("conflict.0.service") == target.map { [$0] }
                }, "conflict.0 did not move off the powered-off m\(rebooted): \((try? placement()) ?? [:])")
                try cluster.bed.run(["start", String(rebooted)], timeoutSeconds: 180)
                try rejoin(rebooted)
                let after = try placement()
                let migrated = conflicts.filter { after[$0] != running[$0] }
                #expect(migrated == ["conflict.0.service"], "before \(running), after \(after)")
                #expect(try stay.map { try cluster.property(running[$0]![0], $0, "MainPID") } == stayPIDs, "a unit restarted")
                try checkedCtl(cluster, ["destroy"] + conflicts)

                // TestShutdownVsMonitor, Flotilla's way: flotillad stopped while its machine is cut
                // off from every other still ends cleanly.
                let cut = 4
                try cluster.bed.run(["isolate", String(cut)])
                #expect(try Testbed.eventually(timeoutSeconds: 30, intervalSeconds: 0.25) { try machineCount(from: 1) == 3 })
                // A stop that hung on the unreachable peers past systemd's stop timeout would end
                // with Result=timeout, one that crashed with another result.
                try cluster.bed.exec(cut, "systemctl", "stop", "flotillad.service")
                #expect(try stoppedCleanly(cut))
                try cluster.bed.run(["rejoin", String(cut)])
                try rejoin(cut)
            }
        }
    }
}
