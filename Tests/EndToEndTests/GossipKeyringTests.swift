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
                #expect(journal.contains("no usable gossip keyring at /etc/flotilla/gossip.keyring") && journal.contains("flotillactl keyring generate"),
                        "\(journal)")
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
