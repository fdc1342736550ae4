import Foundation
import Testing
import TestSupport

/// A slowloris against the leader: 1,000 connections from one host that never finish a TLS
/// handshake or a push-pull exchange, reopened as soon as they are closed.
@Suite(
    "slow clients on the test bed",
    .enabled(if: FlotillaCluster.missingCapability == nil,
             Comment(rawValue: "this host lacks \(FlotillaCluster.missingCapability ?? "nothing")"))
)
struct SlowClientTests {
    static func metric(_ cluster: FlotillaCluster, _ machine: Int, _ line: String) throws -> Double? {
        let text = try cluster.bed.exec(machine, "curl", "-sf", "--unix-socket", "/var/run/flotilla.sock", "http://localhost/metrics")
        return text.split(separator: "\n").first { $0.hasPrefix(line + " ") }.flatMap { Double($0.split(separator: " ").last!) }
    }

    /// For 25 s the leader's Raft (400 connections), peer API (400) and gossip stream (200)
    /// ports face the attack, and a voter restarts in the middle of it, so its links to the
    /// leader must be accepted through it. The API answers on every machine throughout and
    /// takes writes forwarded to the leader's peer port, no
    /// machine's lease lapses, no unit restarts, the restarted voter catches up, and the leader
    /// counts what it refused by address.
    @Test func aThousandSlowConnectionsToTheLeaderLeaveTheClusterServing() async throws {
        try await onOwnThread {
            try FlotillaCluster.with(machines: 4, tag: "slowl") { cluster in
                let bed = cluster.bed
                let units = (1...8).map { "slow-\($0).service" }
                for unit in units {
                    try bed.exec(1, "sh", "-c", "printf '[Service]\\nExecStart=/bin/sleep 1000000\\n' > /tmp/\(unit)")
                }
                try bed.exec(1, [cluster.control, "start"] + units.map { "/tmp/\($0)" })
                var placement: [String: Int] = [:]
                #expect(try Testbed.eventually(timeoutSeconds: 30) {
                    for unit in units { placement[unit] = try cluster.machinesRunning(unit).first }
                    return placement.count == units.count && placement.values.allSatisfy { $0 > 0 }
                })
                func pids() throws -> [String: String] {
                    try Dictionary(uniqueKeysWithValues: units.map { ($0, try cluster.property(placement[$0]!, $0, "MainPID")) })
                }
                let pidsBefore = try pids()
                let lapses = "flotilla_agent_lease_lapses_total"
                let lapsesBefore = try (1...4).map { try Self.metric(cluster, $0, lapses) }

                let leader = try cluster.leaderMachine()
                let restarted = (1...3).first { $0 != leader }!
                let ip = cluster.addresses[leader - 1]
                let attack = SlowConnections([.init(host: ip, port: 7949, count: 400), .init(host: ip, port: 7948, count: 400),
                                              .init(host: ip, port: 7946, count: 200)])
                var slowest = 0.0
                var failures: [String] = []
                let started = Date()
                var didRestart = false
                var writes = 0
                while Date().timeIntervalSince(started) < 25 {
                    if !didRestart, Date().timeIntervalSince(started) > 5 {
                        try bed.exec(restarted, "systemctl", "restart", "flotillad.service")
                        didRestart = true
                    }
                    // A write through a machine that is not the leader: forwarded to the
                    // leader's peer port, which the attack targets.
                    writes += 1
                    // Once restarted, every other write goes through the restarted voter, whose
                    // connections to the leader's peer port are all new, made during the attack.
                    let steady = [1, 2, 3, 4].filter { $0 != leader && $0 != restarted }
                    let writer = Date().timeIntervalSince(started) > 10 && writes % 2 == 0 ? restarted : steady[writes % 2]
                    let name = "write-\(writes).service"
                    try bed.exec(writer, "sh", "-c", "printf '[Service]\\nExecStart=/bin/true\\n' > /tmp/\(name)")
                    let submitted = try cluster.ctlAllowingFailure(writer, "submit", "/tmp/\(name)")
                    if !submitted.succeeded { failures.append("submit on m\(writer): \(submitted.standardError)") }
                    for machine in 1...4 where machine != restarted || Date().timeIntervalSince(started) > 10 {
                        let asked = Date()
                        let answer = try cluster.ctlAllowingFailure(machine, "list-machines", "--no-legend")
                        slowest = max(slowest, Date().timeIntervalSince(asked))
                        if !answer.succeeded || answer.trimmedOutput.split(separator: "\n").count != 4 {
                            failures.append("m\(machine) at \(Int(Date().timeIntervalSince(started))) s: \(answer.standardError)\(answer.trimmedOutput)")
                        }
                    }
                    Thread.sleep(forTimeInterval: 0.5)
                }
                attack.stop()
                let tally = attack.current
                #expect(failures.isEmpty, "list-machines or submit failed during the attack (slowest answer \(slowest) s): \(failures.prefix(5))")
                #expect(tally.closedByServer > 0, "the attack was never refused: \(tally)")

                // No fencing, no restart: every unit still runs its first process.
                #expect(try pids() == pidsBefore)
                #expect(try (1...4).map { try Self.metric(cluster, $0, lapses) } == lapsesBefore)

                // The voter restarted through the attack is back and caught up.
                struct Status: Decodable { var appliedIndex: UInt64 }
                func applied(_ machine: Int) -> UInt64? {
                    guard let output = try? bed.execAllowingFailure(machine, "curl", "-sf", "--unix-socket", "/var/run/flotilla.sock",
                                                                    "http://localhost/flotilla/v1/cluster"), output.succeeded else { return nil }
                    return (try? JSONDecoder().decode(Status.self, from: Data(output.standardOutput.utf8)))?.appliedIndex
                }
                let target = applied(leader) ?? .max
                #expect(Testbed.eventually(timeoutSeconds: 30) { (applied(restarted) ?? 0) >= target },
                        "m\(restarted) applied \(String(describing: applied(restarted))), the leader \(target)")

                let refused = "flotilla_connections_refused_total"
                let raftRefused = try Self.metric(cluster, leader, "\(refused){listener=\"raft\",reason=\"per_address\"}") ?? 0
                let gossipRefused = try Self.metric(cluster, leader, "\(refused){listener=\"gossip\",reason=\"per_address\"}") ?? 0
                #expect(raftRefused > 0 && gossipRefused > 0, "raft \(raftRefused), gossip \(gossipRefused); \(tally)")
                print("slowloris: \(tally); slowest list-machines \(String(format: "%.2f", slowest)) s; leader refused by address: raft \(Int(raftRefused)), gossip \(Int(gossipRefused))")
            }
        }
    }
}
