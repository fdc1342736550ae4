import Foundation
import Locking
import Testing
import TestSupport

/// Issue 7's end-to-end checks: flotillad on three real machines (systemd in nspawn, docker per
/// machine), driven with flotillactl inside the machines.
@Suite(
    "flotillad on the test bed",
    .enabled(if: FlotillaCluster.missingCapability == nil,
             Comment(rawValue: "this host lacks \(FlotillaCluster.missingCapability ?? "nothing")"))
)
struct ClusterTests {
    static let examples = Testbed.repositoryInMachine + "/Units/examples"

    /// fleetctl's workflow on the shipped example units, then the failures fleet handled badly:
    /// a restarted daemon and a killed leader must not restart anything.
    @Test func unitLifecycleWithTheExampleUnits() async throws {
        // Blocks for minutes on the machines: off the cooperative pool (OwnThreadExecutor).
        try await onOwnThread {
            try FlotillaCluster.with(machines: 3, tag: "e2e") { cluster in
                // Template instances with Conflicts: two instances, two machines, both serving.
                try cluster.ctl(1, "submit", "\(Self.examples)/web@.service")
                try cluster.ctl(1, "start", "web@1.service", "web@2.service")
                let webMachines = [try cluster.machinesRunning("web@1.service"), try cluster.machinesRunning("web@2.service")]
                #expect(webMachines.allSatisfy { $0.count == 1 }, "each instance runs exactly once: \(webMachines)")
                #expect(Set(webMachines.flatMap { $0 }).count == 2, "Conflicts=web@*.service puts them apart: \(webMachines)")
                if let machine = webMachines[0].first {
                    let page = try cluster.bed.exec(machine, "curl", "-sf", "--retry", "20", "--retry-delay", "1",
                                                    "--retry-connrefused", "http://127.0.0.1:8081/")
                    #expect(page.hasPrefix("web 1 on m\(machine)"), "the container serves its page: \(page)")
                }

                // list-units shows the truth: every launched unit active, on the machine systemd runs it on.
                let listed = try cluster.ctl(2, "list-units", "--no-legend", "--full", "--fields=unit,active,machine")
                for (index, name) in ["web@1.service", "web@2.service"].enumerated() {
                    let line = listed.split(separator: "\n").first { $0.hasPrefix(name) }.map(String.init) ?? ""
                    #expect(line.contains("active"), "\(name) in list-units: \(listed)")
                    if let machine = webMachines[index].first {
                        #expect(line.contains(cluster.addresses[machine - 1]), "\(name) listed on m\(machine): \(line)")
                    }
                }

                // Any peer answers a local read from its own replica of the registry; a bad value is a 400.
                for machine in 1...3 {
                    let local = try cluster.bed.exec(machine, ["curl", "-sf", "--unix-socket", "/var/run/flotilla.sock",
                                                               "http://localhost/fleet/v1/units?consistency=local"])
                    #expect(local.contains("\"web@1.service\"") && local.contains("\"web@2.service\""), "m\(machine): \(local)")
                }
                let refused = try cluster.bed.execAllowingFailure(3, "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--unix-socket",
                                                                  "/var/run/flotilla.sock", "http://localhost/fleet/v1/units?consistency=eventual")
                #expect(refused.trimmedOutput == "400")

                // A global unit runs everywhere; a MachineOf pair shares a machine; a Conflicts pair does not.
                try cluster.ctl(3, "start", "\(Self.examples)/node-monitor.service", "\(Self.examples)/cache.service",
                                "\(Self.examples)/cache-sidekick.service", "\(Self.examples)/db-primary.service",
                                "\(Self.examples)/db-replica.service")
                #expect(try Testbed.eventually(timeoutSeconds: 30) { try cluster.machinesRunning("node-monitor.service") == [1, 2, 3] })
                let cache = try cluster.machinesRunning("cache.service")
                let sidekick = try cluster.machinesRunning("cache-sidekick.service")
                #expect(cache.count == 1 && sidekick == cache, "MachineOf: cache on \(cache), sidekick on \(sidekick)")
                let primary = try cluster.machinesRunning("db-primary.service")
                let replica = try cluster.machinesRunning("db-replica.service")
                #expect(primary.count == 1 && replica.count == 1 && primary != replica, "Conflicts: \(primary) vs \(replica)")

                // Journal and status come from the unit's machine through the API (fleet needed SSH).
                // systemd reports a Type=simple unit active once it has forked it, so the shell's
                // "cache up" reaches the journal some time after `start` returned: wait for it there.
                var journal = ""
                let logged = try Testbed.eventually(timeoutSeconds: 30) {
                    journal = try cluster.ctl(1, "journal", "--lines=5", "cache.service")
                    return journal.contains("cache up")
                }
                #expect(logged, "journal: \(journal)")
                let messages = try cluster.ctl(1, "journal", "--lines=5", "--output=cat", "cache.service")
                #expect(messages.split(separator: "\n").contains("cache up"), "journal --output=cat: \(messages)")
                let json = try cluster.ctl(2, "journal", "--lines=5", "--output=json", "cache.service")
                #expect(json.contains("\"MESSAGE\":\"cache up\""), "journal --output=json: \(json)")
                let status = try cluster.ctl(2, "status", "cache.service")
                #expect(status.contains("active"), "status: \(status)")

                // Restarting flotillad keeps its units running: the same MainPID before and after.
                guard let webMachine = webMachines[0].first else { return }
                let pidBefore = try cluster.property(webMachine, "web@1.service", "MainPID")
                try cluster.bed.exec(webMachine, "systemctl", "restart", "flotillad.service")
                #expect(try Testbed.eventually(timeoutSeconds: 30) {
                    try cluster.ctlAllowingFailure(webMachine, "list-machines", "--no-legend").succeeded
                })
                Thread.sleep(forTimeInterval: 3)
                #expect(try cluster.property(webMachine, "web@1.service", "MainPID") == pidBefore, "restart kept the unit")

                // kill -9 of every flotillad in turn's worth: kill the leader's; units stay, a new
                // leader answers, and a new unit starts.
                let pidsBefore = try [1, 2, 3].map { try cluster.property($0, "node-monitor.service", "MainPID") }
                let leader = try cluster.leaderMachine()
                try cluster.bed.exec(leader, "systemctl", "kill", "-s", "KILL", "flotillad.service")
                try cluster.ctl(leader == 1 ? 2 : 1, "start", "\(Self.examples)/demo-web.service")
                #expect(try cluster.machinesRunning("demo-web.service").count == 1)
                #expect(try [1, 2, 3].map { try cluster.property($0, "node-monitor.service", "MainPID") } == pidsBefore,
                        "no unit restarted by the leader's death")

                // stop, unload, destroy: systemd follows each step.
                try cluster.ctl(1, "stop", "db-replica.service")
                #expect(try cluster.machinesRunning("db-replica.service").isEmpty)
                try cluster.ctl(1, "unload", "db-replica.service")
                try cluster.ctl(1, "destroy", "db-replica.service")
                let files = try cluster.ctl(2, "list-unit-files", "--no-legend", "--fields=unit")
                #expect(!files.contains("db-replica.service"), "destroyed unit still listed: \(files)")

                // Replacing a unit's file replaces the running unit.
                try cluster.bed.exec(1, "sh", "-c", "sed 's/cache up/cache v2 up/' \(Self.examples)/cache.service > /tmp/cache.service")
                try cluster.ctl(1, "start", "--replace", "/tmp/cache.service")
                let cat = try cluster.ctl(3, "cat", "cache.service")
                #expect(cat.contains("cache v2 up"), "cat shows the new file: \(cat)")
                let replaced = try Testbed.eventually(timeoutSeconds: 30) {
                    guard let machine = try cluster.machinesRunning("cache.service").first else { return false }
                    let file = try cluster.bed.execAllowingFailure(machine, "cat", "/run/flotilla/units/cache.service")
                    let journal = try cluster.bed.execAllowingFailure(machine, "journalctl", "-u", "cache.service", "--no-pager")
                    return file.standardOutput.contains("cache v2 up") && journal.standardOutput.contains("cache v2 up")
                }
                #expect(replaced, "the running unit was replaced by the new file")

                // drain (Nomad's word; fleet had none): the machine's placed units move to the
                // others, MachineOf pair together, and nothing new lands there, not even a unit
                // pinned to it; its global unit keeps running. undrain lets units back.
                let drained = try #require(try cluster.machinesRunning("cache.service").first)
                let drainedID = try cluster.bed.exec(drained, "cat", "/etc/machine-id")
                let other = drained == 1 ? 2 : 1
                #expect(try cluster.ctl(other, "drain", String(drainedID.prefix(12))) == "Machine \(drainedID) drained")
                let placedUnits = ["web@1.service", "web@2.service", "cache.service", "cache-sidekick.service",
                                   "db-primary.service", "demo-web.service"]
                var moved: [String: [Int]] = [:]
                let emptied = try Testbed.eventually(timeoutSeconds: 30) {
                    moved = try Dictionary(uniqueKeysWithValues: placedUnits.map { ($0, try cluster.machinesRunning($0)) })
                    return moved.values.allSatisfy { $0.count == 1 && !$0.contains(drained) }
                }
                #expect(emptied, "every placed unit runs once, off the drained m\(drained): \(moved)")
                #expect(moved["cache-sidekick.service"] == moved["cache.service"], "MachineOf pair moved together: \(moved)")
                #expect(try cluster.machinesRunning("node-monitor.service") == [1, 2, 3], "global units stay")
                try cluster.bed.exec(other, "sh", "-c", "printf '[Service]\\nExecStart=/bin/sleep infinity\\n[X-Fleet]\\nMachineID=\(drainedID)\\n' > /tmp/pinned.service")
                try cluster.ctl(other, "start", "--no-block", "/tmp/pinned.service")
                Thread.sleep(forTimeInterval: 3)
                #expect(try cluster.machinesRunning("pinned.service").isEmpty, "nothing new on a drained machine")
                // An ID nobody has is a 404 from the API (and flotillactl refuses it before asking).
                for verb in ["drain", "undrain"] {
                    let unknown = try cluster.bed.execAllowingFailure(other, "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST",
                                                                      "--unix-socket", "/var/run/flotilla.sock",
                                                                      "http://localhost/flotilla/v1/machines/\(String(repeating: "0", count: 32))/\(verb)")
                    #expect(unknown.trimmedOutput == "404", "\(verb) of an unknown machine: \(unknown.trimmedOutput)")
                }
                #expect(try cluster.ctlAllowingFailure(other, "drain", "nosuchmachine").succeeded == false)
                #expect(try cluster.ctl(other, "undrain", drainedID) == "Machine \(drainedID) undrained")
                #expect(try Testbed.eventually(timeoutSeconds: 30) { try cluster.machinesRunning("pinned.service") == [drained] },
                        "undrained: the pinned unit starts on its machine")
            }
        }
    }

    /// A machine powered off: its units run elsewhere within seconds. A machine cut off the
    /// network: it stops its units before they start elsewhere, so nothing runs twice.
    @Test func machineLossAndPartition() async throws {
        // Blocks for minutes on the machines: off the cooperative pool (OwnThreadExecutor).
        try await onOwnThread {
            try FlotillaCluster.with(machines: 3, tag: "loss") { cluster in
                try cluster.ctl(1, "start", "\(Self.examples)/cache.service", "\(Self.examples)/db-primary.service",
                                "\(Self.examples)/db-replica.service")
                // Cut off a machine that runs one of them and is not the leader's only copy of quorum.
                let units = ["cache.service", "db-primary.service", "db-replica.service"]
                let placed = try units.map { try cluster.machinesRunning($0) }
                #expect(placed.allSatisfy { $0.count == 1 }, "\(placed)")
                let victim = placed.compactMap(\.first).first!
                let others = [1, 2, 3].filter { $0 != victim }
                let victimUnits = zip(units, placed).filter { $0.1 == [victim] }.map(\.0)

                for other in others { try cluster.bed.cut(victim, other) }
                var doubleRun: [String] = []
                let moved = try Testbed.eventually(timeoutSeconds: 60, intervalSeconds: 0.1) {
                    var allMoved = true
                    for unit in victimUnits {
                        let running = try cluster.machinesRunning(unit)
                        if running.count > 1 { doubleRun.append("\(unit) on \(running)") }
                        if !running.contains(where: others.contains) { allMoved = false }
                    }
                    return allMoved
                }
                if !moved { Issue.record("the cut machine's units never ran elsewhere: \(try cluster.diagnostics())") }
                #expect(doubleRun.isEmpty, "no unit ran on two machines at once: \(doubleRun)")
                for other in others { try cluster.bed.heal(victim, other) }
                // After the heal, for 10 s: no unit may ever run twice, and each must end up running
                // exactly once (the healed machine rejoins, learns its units moved, keeps them stopped).
                var afterHeal: [String: [[Int]]] = [:]
                let healDeadline = Date().addingTimeInterval(10)
                while Date() < healDeadline {
                    for unit in units { afterHeal[unit, default: []].append(try cluster.machinesRunning(unit)) }
                    Thread.sleep(forTimeInterval: 0.2)
                }
                for unit in units {
                    let samples = afterHeal[unit] ?? []
                    #expect(samples.allSatisfy { $0.count <= 1 }, "\(unit) ran twice after the heal: \(samples)")
                    #expect(samples.last?.count == 1, "\(unit) runs once after the heal: \(samples)")
                }

                // Power off a machine: its units are active elsewhere.
                let second = try #require(try cluster.machinesRunning("cache.service").first, "cache.service runs somewhere before the power-off")
                try cluster.bed.run(["poweroff", String(second)])
                #expect(try Testbed.eventually(timeoutSeconds: 60) {
                    try cluster.machinesRunning("cache.service").contains { $0 != second }
                })
            }
        }
    }
}

extension ClusterTests {
    /// Autopilot: a dead voter is replaced by an alive agent (learner, promoted, dead one
    /// removed), so the cluster survives losing a second of its founding voters.
    /// Autopilot replaces a dead voter with an alive agent whose certificate says it may be a
    /// server, never with one whose certificate is an agent's (even when it comes first in
    /// machine ID order, as it is made to here).
    @Test func aDeadVoterIsReplacedByAServerCertifiedAgentOnly() async throws {
        // Blocks for minutes on the machines: off the cooperative pool (OwnThreadExecutor).
        try await onOwnThread {
            try FlotillaCluster.with(machines: 5, tag: "autopilot") { cluster in
                let ids = try [4, 5].map { try cluster.bed.exec($0, "cat", "/etc/machine-id") }
                let (agentOnly, replacement) = ids[0] < ids[1] ? (4, 5) : (5, 4)
                try cluster.reissueCertificate(agentOnly, role: "--agent")
                let leader = try cluster.leaderMachine()
                let founding = [1, 2, 3].filter { $0 != leader }
                try cluster.bed.run(["kill", String(founding[0])])
                let replacementAddress = cluster.addresses[replacement - 1]
                let agentOnlyAddress = cluster.addresses[agentOnly - 1]
                func roles() throws -> [[String]] {
                    let listing = try cluster.ctlAllowingFailure(replacement, "list-machines", "--no-legend", "--full", "--fields=ip,role")
                    return listing.standardOutput.split(separator: "\n").map { $0.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init) }
                }
                let promoted = try Testbed.eventually(timeoutSeconds: 90, intervalSeconds: 0.5) {
                    try roles().contains([replacementAddress, "voter"])
                }
                if !promoted { Issue.record("m\(replacement) never became a voter: \(try cluster.diagnostics())") }
                let finalRoles = try roles()
                #expect(finalRoles.contains([agentOnlyAddress, "agent"]), "the agent-certified machine stays an agent: \(finalRoles)")
                let journal = try cluster.bed.exec(leader, "journalctl", "-u", "flotillad", "--no-pager")
                #expect(journal.contains("a candidate is not a server of the cluster; passed over"), "\(journal)")
                // Wait until the dead voter is out of the configuration, then lose another founder.
                let removed = try Testbed.eventually(timeoutSeconds: 60, intervalSeconds: 0.5) {
                    let status = try cluster.bed.execAllowingFailure(replacement, "curl", "-sf", "--unix-socket", "/var/run/flotilla.sock",
                                                                     "http://localhost/flotilla/v1/cluster")
                    return !status.standardOutput.contains("\"\(cluster.addresses[founding[0] - 1])\"")
                        && status.standardOutput.contains("\"\(replacementAddress)\"")
                        && !status.standardOutput.contains("\"\(agentOnlyAddress)\"")
                }
                #expect(removed, "the dead voter left the configuration, replaced by the server-certified machine")
                try cluster.bed.run(["kill", String(founding[1])])
                try cluster.ctl(replacement, "start", "\(Self.examples)/cache.service")
                #expect(try cluster.machinesRunning("cache.service").count == 1,
                        "with 2 of 3 voters alive (one of them the promoted agent) the cluster still schedules")
            }
        }
    }
}

extension FlotillaCluster {
    /// The machine whose flotillad leads (from the API's cluster status). Right after a fault
    /// heals the cluster may be between leaders, so it asks every machine in turn until one
    /// names a leader, for up to `timeoutSeconds`.
    func leaderMachine(timeoutSeconds: Double = 30) throws -> Int {
        struct Status: Decodable { var leaderMachineID: String? }
        let machineIDs = try (1...bed.machineCount).map { try bed.exec($0, "cat", "/etc/machine-id") }
        var answers: [String] = []
        var leader: Int?
        _ = Testbed.eventually(timeoutSeconds: timeoutSeconds, intervalSeconds: 0.25) {
            for machine in 1...bed.machineCount {
                guard let output = try? bed.execAllowingFailure(machine, "curl", "-sf", "--max-time", "2", "--unix-socket",
                                                                "/var/run/flotilla.sock", "http://localhost/flotilla/v1/cluster"),
                      output.succeeded else { continue }
                answers.append("m\(machine): \(output.trimmedOutput)")
                if let id = (try? JSONDecoder().decode(Status.self, from: Data(output.standardOutput.utf8)))?.leaderMachineID,
                   let index = machineIDs.firstIndex(of: id) {
                    leader = index + 1
                    return true
                }
            }
            return false
        }
        if let leader { return leader }
        throw ClusterFailure(description: "no machine named a leader within \(timeoutSeconds) s; last answers: \(answers.suffix(bed.machineCount))")
    }
}

extension ClusterTests {
    /// Units/flotilla.socket's way of running the API: systemd holds the socket, the first
    /// request starts flotillad, which serves on the inherited descriptor (LISTEN_FDS).
    @Test func socketActivationServesTheAPI() async throws {
        // Blocks for minutes on the machines: off the cooperative pool (OwnThreadExecutor).
        try await onOwnThread {
            try Testbed.with(machines: 1, tag: "socket") { bed in
                let daemon = try #require(Testbed.binaryInMachine(named: "flotillad"))
                let address = try bed.address(1)
                _ = try FlotillaCluster.credentialed(bed)
                try bed.exec(1, ["systemd-run", "--unit=flotillad", "--socket-property=ListenStream=/run/flotilla-activated.sock",
                                 "--socket-property=SocketMode=0660", "-p", "Type=notify", "-p", "NotifyAccess=main",
                                 daemon, "--public-ip=\(address)"])
                let before = try bed.execAllowingFailure(1, "systemctl", "is-active", "flotillad.service").trimmedOutput
                #expect(before == "inactive", "nothing runs before the first request")
                let answer = try bed.exec(1, ["curl", "-sf", "--retry", "10", "--retry-connrefused", "--unix-socket",
                                              "/run/flotilla-activated.sock", "http://localhost/flotilla/v1/cluster"])
                #expect(answer.contains("\"voters\":[\"\(address)\"]"), "the activated daemon answers: \(answer)")
                #expect(try bed.exec(1, "systemctl", "is-active", "flotillad.service") == "active")
                let mode = try bed.exec(1, "stat", "-c", "%a", "/run/flotilla-activated.sock")
                #expect(mode == "660")
                let ownSocket = try bed.execAllowingFailure(1, "test", "-e", "/var/run/flotilla.sock")
                #expect(!ownSocket.succeeded, "with an inherited socket flotillad opens no socket of its own")
            }
        }
    }
}

extension ClusterTests {
    /// fleetctl 1.0's requests, as its HTTP client sends them, against a real flotillad: a PUT
    /// with the name and options and no desiredState (201, inactive), then a PUT with the state
    /// (204), and the unit runs.
    @Test func fleetsClientCreatesThenStartsAUnit() async throws {
        // Blocks for minutes on the machines: off the cooperative pool (OwnThreadExecutor).
        try await onOwnThread {
            try FlotillaCluster.with(machines: 1, tag: "fleetput") { cluster in
                func put(_ body: String) throws -> String {
                    try cluster.bed.exec(1, "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--unix-socket", "/var/run/flotilla.sock",
                                         "-X", "PUT", "-H", "Content-Type: application/json", "--data-binary", body,
                                         "http://localhost/fleet/v1/units/hello.service")
                }
                let create = #"{"name":"hello.service","options":[{"name":"ExecStart","section":"Service","value":"/bin/sleep 1000000"}]}"#
                #expect(try put(create) == "201")
                let unit = try cluster.bed.exec(1, "curl", "-sf", "--unix-socket", "/var/run/flotilla.sock", "http://localhost/fleet/v1/units/hello.service")
                #expect(unit.contains(#""desiredState":"inactive""#), "created inactive: \(unit)")
                #expect(try put(create) == "409", "an existing unit without a desiredState is fleet's 409")
                #expect(try put(#"{"desiredState":"launched","name":"hello.service"}"#) == "204")
                #expect(try Testbed.eventually(timeoutSeconds: 30) { try cluster.machinesRunning("hello.service") == [1] })
            }
        }
    }
}

extension ClusterTests {
    /// Two machines with one machine ID (a cloned image, fleet's TestDetectMachineId): the
    /// newcomer refuses to start, naming the clash and the fix, with the exit status systemd is
    /// told not to restart on; the first machine keeps its units; with its own ID the newcomer
    /// joins normally.
    @Test func aMachineWithAnotherMachinesIDIsRefusedAndJoinsOnceItHasItsOwn() async throws {
        try await onOwnThread {
            try FlotillaCluster.with(machines: 3, tag: "dupid") { cluster in
                let firstID = try cluster.bed.exec(1, "cat", "/etc/machine-id")
                // The built daemon's own --help lists its settings with their defaults.
                let help = try cluster.bed.exec(1, cluster.daemon, "--help")
                #expect(help.contains("agent_ttl (default: 2s)") && help.contains("machine_id_path (default: /etc/machine-id)"), "\(help)")
                let pinned = "[Service]\nExecStart=/bin/sleep 1000000\n\n[X-Fleet]\nMachineID=\(firstID)\n"
                try cluster.bed.exec(1, "sh", "-c", "printf '%s' '\(pinned)' > /tmp/pinned.service")
                try cluster.ctl(1, "start", "/tmp/pinned.service")
                #expect(try Testbed.eventually(timeoutSeconds: 30) { try cluster.machinesRunning("pinned.service") == [1] })

                // Machine 3 comes back as a clone of machine 1: the same ID, its own address.
                // First with its own certificate, which names another machine than the cloned
                // ID: refused before it speaks to anyone. Then without peer TLS, where only
                // membership can tell: refused because machine 1 is alive with that ID.
                try cluster.bed.exec(3, "systemctl", "stop", "flotillad.service")
                try cluster.bed.exec(3, "sh", "-c", "printf '%s\\n' \(firstID) > /run/cloned-machine-id")
                for (extra, reasons) in [([String](), ["cert_file /etc/flotilla/tls/peer.pem is for", "systemd-machine-id-setup"]),
                                         (["--peer-insecure-plaintext"], ["already used by the live member at \(cluster.addresses[0])",
                                                                          "systemd-machine-id-setup"])] {
                    _ = try cluster.bed.execAllowingFailure(3, "systemctl", "reset-failed", "flotillad.service")
                    _ = try cluster.bed.runAllowingFailure(
                        ["exec", "3", "systemd-run", "--unit=flotillad", "-p", "Type=notify", "-p", "NotifyAccess=main",
                            "-p", "Restart=always", "-p", "RestartSec=200ms", "-p", "RestartPreventExitStatus=78", cluster.daemon,
                            "--public-ip=\(cluster.addresses[2])", "--voters=\(cluster.voters)", "--machine-id-path=/run/cloned-machine-id"] + extra)
                    let refused = try Testbed.eventually(timeoutSeconds: 30) {
                        let status = try cluster.property(3, "flotillad.service", "ExecMainStatus")
                        let state = try cluster.property(3, "flotillad.service", "ActiveState")
                        return status == "78" && state == "failed"
                    }
                    let journal = try cluster.journalOnceItContains(3, reasons)
                    #expect(refused, "the clone (\(extra)) was not refused: \(journal)")
                    for reason in reasons { #expect(journal.contains(reason), "\(extra): \(journal)") }
                }

                // Nothing ran twice, and machine 1's ID still belongs to machine 1's address.
                #expect(try cluster.machinesRunning("pinned.service") == [1])
                let machines = try cluster.ctl(2, "list-machines", "--no-legend", "--full")
                let firstLine = machines.split(separator: "\n").first { $0.hasPrefix(firstID) }.map(String.init) ?? ""
                #expect(firstLine.contains(cluster.addresses[0]), "list-machines: \(machines)")

                // With its own ID again, machine 3 joins as before.
                _ = try cluster.bed.execAllowingFailure(3, "systemctl", "reset-failed", "flotillad.service")
                try cluster.startDaemon(3)
                let rejoined = try Testbed.eventually(timeoutSeconds: 60, intervalSeconds: 0.2) {
                    let output = try cluster.ctlAllowingFailure(1, "list-machines", "--no-legend")
                    let active = try cluster.property(3, "flotillad.service", "ActiveState")
                    return output.succeeded && output.trimmedOutput.split(separator: "\n").count == 3 && active == "active"
                }
                let diagnostics = rejoined ? "" : try cluster.diagnostics()
                #expect(rejoined, "machine 3 did not rejoin: \(diagnostics)")
                #expect(try cluster.machinesRunning("pinned.service") == [1])
            }
        }
    }
}

extension ClusterTests {
    /// Two machines with one machine ID started at the same moment (a clone booting beside its
    /// original): both pass gossip's start-up check or both see the clash, so the voters' lease
    /// decides. Exactly one of them runs the machine's units, never both at any sample, and the
    /// other exits 78 naming the clash and the fix.
    @Test func twoMachinesWithOneIDStartedTogetherRunItsUnitsOnOneOfThemOnly() async throws {
        try await onOwnThread {
            try FlotillaCluster.with(machines: 5, tag: "dupsim") { cluster in
                let sharedID = try cluster.bed.exec(4, "cat", "/etc/machine-id")
                let pinned = "[Service]\nExecStart=/bin/sleep 1000000\n\n[X-Fleet]\nMachineID=\(sharedID)\n"
                try cluster.bed.exec(1, "sh", "-c", "printf '%s' '\(pinned)' > /tmp/pinned.service")
                try cluster.ctl(1, "start", "/tmp/pinned.service")
                #expect(try Testbed.eventually(timeoutSeconds: 30) { try cluster.machinesRunning("pinned.service") == [4] })

                // Machine 5 becomes a clone of machine 4: its ID, and a certificate for that ID at
                // machine 5's address (a copy of machine 4's names machine 4's address and is
                // refused before gossip starts; an operator who makes one from the ID the clone
                // reports gets this one).
                let work = "/root/flotilla-ca"
                try cluster.ctl(1, "tls", "cert", "create", "--server", "--machine", sharedID, "--ip", cluster.addresses[4],
                                "--ca", "\(work)/flotilla-ca.pem", "--ca-key", "\(work)/flotilla-ca-key.pem", "--directory", work, "--name", "clone")
                let certificate = try cluster.bed.exec(1, "cat", "\(work)/clone.pem")
                let key = try cluster.bed.exec(1, "cat", "\(work)/clone-key.pem")
                try cluster.bed.exec(5, ["sh", "-c", "umask 077 && mkdir -p /run/clone && printf '%s\\n' \"$1\" > /run/clone/machine-id && printf '%s\\n' \"$2\" > /run/clone/peer.pem && printf '%s\\n' \"$3\" > /run/clone/peer-key.pem",
                                         "sh", sharedID, certificate, key])
                for machine in [4, 5] { try cluster.bed.exec(machine, "systemctl", "stop", "flotillad.service") }
                // Past the lease's expiry, so no voter remembers machine 4's last holder: a race
                // between equals.
                #expect(try Testbed.eventually(timeoutSeconds: 30) { try cluster.machinesRunning("pinned.service").isEmpty })
                Thread.sleep(forTimeInterval: 5)

                let starts: [(Int, [String])] = [
                    (4, []),
                    (5, ["--machine-id-path=/run/clone/machine-id", "--cert-file=/run/clone/peer.pem", "--key-file=/run/clone/peer-key.pem"]),
                ]
                let failures = Locked<[String]>([])
                DispatchQueue.concurrentPerform(iterations: starts.count) { index in
                    let (machine, extra) = starts[index]
                    do {
                        _ = try cluster.bed.execAllowingFailure(machine, "systemctl", "reset-failed", "flotillad.service")
                        _ = try cluster.bed.runAllowingFailure(
                            ["exec", String(machine), "systemd-run", "--unit=flotillad", "--no-block", "-p", "Type=notify", "-p", "NotifyAccess=main",
                             "-p", "Restart=always", "-p", "RestartSec=200ms", "-p", "RestartPreventExitStatus=78", cluster.daemon,
                             "--public-ip=\(cluster.addresses[machine - 1])", "--voters=\(cluster.voters)"] + extra)
                    } catch {
                        failures.withLock { $0.append("machine \(machine): \(error)") }
                    }
                }
                #expect(failures.withLock { $0 }.isEmpty, "\(failures.withLock { $0 })")

                // Sampled until one of the two has been refused and the other runs the unit.
                var both: [Int] = []
                var outcome: (winner: Int, loser: Int)?
                let decided = try Testbed.eventually(timeoutSeconds: 60, intervalSeconds: 0.1) {
                    let running = try cluster.machinesRunning("pinned.service")
                    if running.count > 1 { both = running }
                    let states = try [4, 5].map { machine in
                        (machine, try cluster.property(machine, "flotillad.service", "ActiveState"),
                         try cluster.property(machine, "flotillad.service", "ExecMainStatus"))
                    }
                    guard let refused = states.first(where: { $0.1 == "failed" && $0.2 == "78" }),
                          let kept = states.first(where: { $0.0 != refused.0 && $0.1 == "active" }),
                          running == [kept.0] else { return false }
                    outcome = (kept.0, refused.0)
                    return true
                }
                let diagnostics = decided ? "" : try cluster.diagnostics()
                #expect(decided, "no single winner: \(diagnostics)")
                #expect(both.isEmpty, "pinned.service ran on machines \(both) at once")
                guard let outcome else { return }
                let journal = try cluster.journalOnceItContains(outcome.loser, ["already used by the live member at", "systemd-machine-id-setup"])
                #expect(journal.contains("already used by the live member at \(cluster.addresses[outcome.winner - 1])"), "\(journal)")
                // The leader's view is the winner's: its address, the unit running.
                var listed = ""
                let shown = try Testbed.eventually(timeoutSeconds: 30, intervalSeconds: 0.2) {
                    listed = try cluster.ctl(1, "list-units", "--no-legend", "--full")
                    let line = listed.split(separator: "\n").first { $0.hasPrefix("pinned.service") } ?? ""
                    return line.contains(cluster.addresses[outcome.winner - 1]) && line.contains("active") && line.contains("running")
                }
                #expect(shown, "list-units: \(listed)")
                // Still one machine per sample a while later.
                for _ in 0..<20 {
                    #expect(try cluster.machinesRunning("pinned.service") == [outcome.winner])
                    Thread.sleep(forTimeInterval: 0.1)
                }

                // Each machine with its own ID again: both members, the unit on machine 4.
                for machine in [4, 5] {
                    _ = try cluster.bed.execAllowingFailure(machine, "systemctl", "stop", "flotillad.service")
                    try cluster.startDaemon(machine)
                }
                let rejoined = try Testbed.eventually(timeoutSeconds: 60, intervalSeconds: 0.2) {
                    let output = try cluster.ctlAllowingFailure(1, "list-machines", "--no-legend")
                    let running = try cluster.machinesRunning("pinned.service")
                    return output.succeeded && output.trimmedOutput.split(separator: "\n").count == 5 && running == [4]
                }
                let after = rejoined ? "" : try cluster.diagnostics()
                #expect(rejoined, "the machines did not come back with their own IDs: \(after)")
            }
        }
    }
}
