import Foundation
import Testing
import TestSupport

/// Issue 13, gossip: on real machines, a flotillad without the cluster's keyring (another key,
/// or plain text) never becomes a member, and what it sends is dropped unread and counted; with
/// the key, the same machine joins (so the check would see a stranger that got in).
@Suite(
    "gossip keyring on the test bed",
    .enabled(if: FlotillaCluster.missingCapability == nil,
             Comment(rawValue: "this host lacks \(FlotillaCluster.missingCapability ?? "nothing")"))
)
struct GossipKeyringEndToEndTests {
    @Test func aMachineWithoutTheClustersKeyNeverJoins() async throws {
        try await onOwnThread {
            try FlotillaCluster.with(machines: 4, tag: "gkey") { cluster in
                func listed() throws -> [String] {
                    let output = try cluster.ctlAllowingFailure(1, "list-machines", "--no-legend", "--full", "--fields=ip")
                    return output.succeeded ? output.trimmedOutput.split(separator: "\n").map(String.init) : []
                }
                func droppedUnauthenticated() throws -> Int {
                    let text = try cluster.bed.exec(1, "curl", "-sf", "--unix-socket", "/var/run/flotilla.sock", "http://localhost/metrics")
                    return text.split(separator: "\n").filter { $0.hasPrefix("flotilla_gossip_dropped_total{reason=\"unauthenticated_") }
                        .compactMap { $0.split(separator: " ").last.flatMap { Int($0) } }.reduce(0, +)
                }
                func restartMachine4(_ arguments: [String]) throws {
                    _ = try cluster.bed.execAllowingFailure(4, "systemctl", "stop", "flotillad.service")
                    _ = try cluster.bed.execAllowingFailure(4, "systemctl", "reset-failed", "flotillad.service")
                    try cluster.bed.exec(4, ["systemd-run", "--unit=flotillad", "-p", "Type=notify", "-p", "NotifyAccess=main",
                                             cluster.daemon, "--public-ip=\(cluster.addresses[3])", "--voters=\(cluster.voters)"]
                                             + arguments)
                }
                let stranger = cluster.addresses[3]
                #expect(try listed().contains(stranger))

                // Machine 4 comes back with a keyring of its own making, then in plain text.
                let otherKeyring = try cluster.ctl(4, "keyring", "generate")
                try cluster.bed.exec(4, ["sh", "-c", "umask 077 && printf '%s\\n' \"$1\" > /etc/flotilla/other.keyring", "sh", otherKeyring])
                for arguments in [["--gossip-keyring-file=/etc/flotilla/other.keyring"], ["--gossip-insecure-plaintext"]] {
                    _ = try cluster.bed.execAllowingFailure(4, "systemctl", "stop", "flotillad.service")
                    let gone = try Testbed.eventually(timeoutSeconds: 60, intervalSeconds: 0.2) { try !listed().contains(stranger) }
                    #expect(gone, "machine 4 was not dropped after its flotillad stopped: \((try? listed()) ?? [])")
                    let droppedBefore = try droppedUnauthenticated()
                    try restartMachine4(arguments)
                    let refused = try Testbed.eventually(timeoutSeconds: 30, intervalSeconds: 0.2) {
                        try droppedUnauthenticated() > droppedBefore
                    }
                    #expect(refused, "machine 4 (\(arguments)) sent nothing machine 1 refused")
                    // Its joins retry every few hundred milliseconds and its probes never stop:
                    // for ten seconds it must stay out.
                    let deadline = Date().addingTimeInterval(10)
                    while Date() < deadline {
                        let machines = try listed()
                        #expect(!machines.contains(stranger) && machines.count == 3, "\(arguments): \(machines)")
                        if machines.contains(stranger) { break }
                        Thread.sleep(forTimeInterval: 0.5)
                    }
                    #expect(try cluster.property(4, "flotillad.service", "ActiveState") == "active", "it ran all along")
                }

                // The control: with the cluster's keyring (the default path) it joins.
                try restartMachine4([])
                let joined = try Testbed.eventually(timeoutSeconds: 60, intervalSeconds: 0.2) { try listed().contains(stranger) }
                #expect(joined, "machine 4 with the right key did not join: \((try? cluster.diagnostics()) ?? "")")
            }
        }
    }

    /// Issue 13's rotation on a running 5-machine cluster: install a new key (from an agent, so
    /// the step is relayed to the leader), use it, remove the old one. Every machine's ring and
    /// keyring file follow each step; not one gossip packet is refused meanwhile and the leader
    /// never sees a member other than alive; a restarted machine comes back with the new key.
    @Test func theKeyRotatesOnARunningClusterWithoutAFalseSuspicion() async throws {
        try await onOwnThread {
            try FlotillaCluster.with(machines: 5, tag: "grot") { cluster in
                func keys(_ machine: Int) throws -> [String] {
                    try cluster.bed.exec(machine, "cat", "/etc/flotilla/gossip.keyring").split(separator: "\n")
                        .map(String.init).filter { !$0.hasPrefix("#") && !$0.isEmpty }
                }
                func refusedPackets(_ machine: Int) throws -> Int {
                    let text = try cluster.bed.exec(machine, "curl", "-sf", "--unix-socket", "/var/run/flotilla.sock", "http://localhost/metrics")
                    return text.split(separator: "\n").filter { $0.hasPrefix("flotilla_gossip_dropped_total{reason=\"unauthenticated_") }
                        .compactMap { $0.split(separator: " ").last.flatMap { Int($0) } }.reduce(0, +)
                }
                struct Page: Decodable {
                    struct Event: Decodable { var kind: String; var machine: Machine? }
                    struct Machine: Decodable { var state: String }
                    var events: [Event]
                    var lastIndex: UInt64
                }
                func events(after index: UInt64) throws -> Page {
                    let text = try cluster.bed.exec(1, "curl", "-sf", "--unix-socket", "/var/run/flotilla.sock",
                                                    "http://localhost/flotilla/v1/watch?afterIndex=\(index)&waitMilliseconds=0")
                    return try JSONDecoder().decode(Page.self, from: Data(text.utf8))
                }
                func everyMachine(_ what: String, _ expected: @escaping ([String]) -> Bool) throws {
                    let reached = try Testbed.eventually(timeoutSeconds: 20, intervalSeconds: 0.2) {
                        try (1...5).allSatisfy { try expected(keys($0)) }
                    }
                    let rings = try (1...5).map { "m\($0): \(try keys($0))" }
                    #expect(reached, "\(what): \(rings)")
                }
                let oldKey = try #require(try keys(1).first)
                let newKey = try #require(try cluster.ctl(1, "keyring", "generate").split(separator: "\n").last.map(String.init))
                let refusedBefore = try (1...5).map(refusedPackets)
                let startIndex = try events(after: 0).lastIndex

                try cluster.ctl(4, "keyring", "install", newKey)
                try everyMachine("installed everywhere, the old key still primary") { $0 == [oldKey, newKey] }
                let listing = try cluster.ctl(5, "keyring", "list", "--no-legend").split(separator: "\n").map { $0.split(separator: "\t").map(String.init) }
                #expect(listing.count == 2 && listing[0][1] == "yes" && listing[1][1] == "-", "\(listing)")
                let newFingerprint = try #require(listing.last?.first)
                try cluster.ctl(5, "keyring", "use", newFingerprint)
                try everyMachine("the new key primary everywhere") { $0 == [newKey, oldKey] }
                let refusal = try cluster.ctlAllowingFailure(2, "keyring", "remove", newFingerprint)
                #expect(!refusal.succeeded && refusal.standardError.contains("primary"), "the primary cannot be removed: \(refusal.standardError)")
                try cluster.ctl(2, "keyring", "remove", oldKey)
                try everyMachine("the old key gone everywhere") { $0 == [newKey] }
                #expect(try cluster.bed.exec(3, "stat", "-c", "%a", "/etc/flotilla/gossip.keyring") == "600")

                // Gossip goes on under the new key: nothing refused, nobody suspected.
                Thread.sleep(forTimeInterval: 5)
                #expect(try (1...5).map(refusedPackets) == refusedBefore, "gossip packets refused during the rotation")
                let page = try events(after: startIndex)
                let notAlive = page.events.compactMap { $0.kind == "machine" ? $0.machine?.state : nil }.filter { $0 != "alive" }
                #expect(notAlive.isEmpty, "machine events during the rotation: \(notAlive)")
                for machine in 1...5 {
                    #expect(try cluster.ctl(machine, "list-machines", "--no-legend").split(separator: "\n").count == 5, "m\(machine)")
                }

                // A restart reads the new ring from its file and rejoins.
                try cluster.bed.exec(5, "systemctl", "restart", "flotillad.service")
                let rejoined = try Testbed.eventually(timeoutSeconds: 60, intervalSeconds: 0.3) {
                    let output = try cluster.ctlAllowingFailure(5, "list-machines", "--no-legend")
                    return output.succeeded && output.trimmedOutput.split(separator: "\n").count == 5
                }
                #expect(rejoined, "\((try? cluster.diagnostics()) ?? "")")
            }
        }
    }

    /// Without a keyring and without asking for plain text, flotillad does not start: exit 78
    /// (not restarted by Units/flotillad.service), and the journal says what to do.
    @Test func withoutAKeyringFlotilladRefusesToStart() async throws {
        try await onOwnThread {
            try FlotillaCluster.with(machines: 1, tag: "gnokey") { cluster in
                try cluster.bed.exec(1, "systemctl", "stop", "flotillad.service")
                _ = try cluster.bed.execAllowingFailure(1, "systemctl", "reset-failed", "flotillad.service")
                try cluster.bed.exec(1, "rm", "/etc/flotilla/gossip.keyring")
                _ = try cluster.bed.execAllowingFailure(1, "systemd-run", "--unit=flotillad", "-p", "Type=notify", "-p", "NotifyAccess=main",
                                                        "-p", "Restart=always", "-p", "RestartSec=200ms", "-p", "RestartPreventExitStatus=78",
                                                        cluster.daemon, "--public-ip=\(cluster.addresses[0])")
                let refused = try Testbed.eventually(timeoutSeconds: 30) {
                    try cluster.property(1, "flotillad.service", "ExecMainStatus") == "78"
                        && cluster.property(1, "flotillad.service", "ActiveState") == "failed"
                }
                let journal = try cluster.journalOnceItContains(1, ["no usable gossip keyring at /etc/flotilla/gossip.keyring",
                                                                    "flotillactl keyring generate"])
                #expect(refused, "\(journal)")
                let said = journal.contains("no usable gossip keyring at /etc/flotilla/gossip.keyring") && journal.contains("flotillactl keyring generate")
                // Once (soak run 1, load average 12) the unit's journal held nothing of this
                // start, not even systemd's own "Starting" line, for 30 s: then show the whole
                // machine's journal and the unit's status, to tell journald's lag from our own.
                let context = said ? "" : (try? cluster.bed.execAllowingFailure(1, "sh", "-c",
                    "systemctl status --no-pager flotillad.service; journalctl --no-pager -n 60 -o short-precise"))?.standardOutput ?? ""
                #expect(said, "\(journal)\n--- machine:\n\(context)")
            }
        }
    }

    /// Raft's port speaks TLS 1.3 with the cluster's CA and asks for a client certificate: a
    /// client with a machine's certificate completes the handshake, one without is refused with
    /// TLS's "certificate required" alert, and the journal says peer TLS is on.
    @Test func raftAcceptsOnlyMutualTLSWithTheClustersCertificates() async throws {
        try await onOwnThread {
            try FlotillaCluster.with(machines: 1, tag: "rafttls") { cluster in
                let tls = FlotillaCluster.tlsDirectory
                let address = "\(cluster.addresses[0]):7949"
                let withCertificate = try cluster.bed.execAllowingFailure(1, "sh", "-c",
                    "openssl s_client -connect \(address) -tls1_3 -verify_return_error -CAfile \(tls)/flotilla-ca.pem -cert \(tls)/peer.pem -key \(tls)/peer-key.pem -brief </dev/null 2>&1")
                #expect(withCertificate.standardOutput.contains("Protocol version: TLSv1.3")
                        && withCertificate.standardOutput.contains("Verification: OK"), "\(withCertificate.standardOutput)")
                let without = try cluster.bed.execAllowingFailure(1, "sh", "-c",
                    "(sleep 1; printf x) | openssl s_client -connect \(address) -tls1_3 -CAfile \(tls)/flotilla-ca.pem -quiet 2>&1")
                #expect(without.standardOutput.contains("certificate required"), "\(without.standardOutput)")
                let journal = try cluster.bed.exec(1, "journalctl", "-u", "flotillad", "--no-pager")
                #expect(!journal.contains("peer TLS is off"), "\(journal)")
            }
        }
    }
}
