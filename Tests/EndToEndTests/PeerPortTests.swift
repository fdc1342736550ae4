import Foundation
import Testing
import TestSupport

/// Issue 13, the peer port (7948) on real machines: it speaks mutual TLS with the cluster's CA
/// only, serves peer routes and relayed requests only, and refuses (and counts) the rest. The
/// hole it closes: a plain `PUT` of a `Global=true` unit to any machine's peer port ran a command
/// as root on every machine.
@Suite(
    "peer port on the test bed",
    .enabled(if: FlotillaCluster.missingCapability == nil,
             Comment(rawValue: "this host lacks \(FlotillaCluster.missingCapability ?? "nothing")"))
)
struct PeerPortEndToEndTests {
    @Test func thePeerPortServesOnlyTheClustersPeersAndOnlyPeerRoutes() async throws {
        try await onOwnThread {
            try FlotillaCluster.with(machines: 3, tag: "peerport") { cluster in
                let tls = FlotillaCluster.tlsDirectory
                let target = "\(cluster.addresses[0]):7948"
                let machine1 = try cluster.bed.exec(1, "cat", "/etc/machine-id")
                let machine2 = try cluster.bed.exec(2, "cat", "/etc/machine-id")
                let unitBody = #"{"desiredState":"launched","options":[{"section":"Service","name":"ExecStart","value":"/bin/touch /tmp/owned"},{"section":"X-Fleet","name":"Global","value":"true"}]}"#
                /// The HTTP status machine 2 gets from machine 1's peer port ("000": no HTTP answer).
                func status(_ curlArguments: [String], _ path: String, method: String = "GET", body: String? = nil) throws -> String {
                    var command = ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "5", "-X", method] + curlArguments
                    if let body { command += ["-H", "Content-Type: application/json", "--data", body] }
                    return try cluster.bed.runAllowingFailure(["exec", "2"] + command + [path]).standardOutput.trimmingCharacters(in: .whitespacesAndNewlines)
                }
                let ownCertificate = ["--cacert", "\(tls)/flotilla-ca.pem", "--cert", "\(tls)/peer.pem", "--key", "\(tls)/peer-key.pem"]

                // Strangers: plain HTTP, TLS without a certificate, a certificate of another CA.
                #expect(try status([], "http://\(target)/fleet/v1/units/owned.service", method: "PUT", body: unitBody) == "000")
                #expect(try status(["--cacert", "\(tls)/flotilla-ca.pem"], "https://\(target)/fleet/v1/units/owned.service",
                                   method: "PUT", body: unitBody) == "000")
                try cluster.bed.exec(2, "mkdir", "-p", "/root/other-ca")
                try cluster.ctl(2, "tls", "ca", "create", "--directory", "/root/other-ca")
                try cluster.ctl(2, "tls", "cert", "create", "--server", "--machine", machine2, "--ip", cluster.addresses[1],
                                "--ca", "/root/other-ca/flotilla-ca.pem", "--ca-key", "/root/other-ca/flotilla-ca-key.pem",
                                "--directory", "/root/other-ca", "--name", "m2")
                #expect(try status(["--cacert", "\(tls)/flotilla-ca.pem", "--cert", "/root/other-ca/m2.pem", "--key", "/root/other-ca/m2-key.pem"],
                                   "https://\(target)/fleet/v1/units/owned.service", method: "PUT", body: unitBody) == "000")

                // A client certificate of the cluster's CA is for api_listen, not the peer port.
                let work = "/root/flotilla-ca"
                try cluster.ctl(1, "tls", "cert", "create", "--client", "--ca", "\(work)/flotilla-ca.pem", "--ca-key", "\(work)/flotilla-ca-key.pem",
                                "--directory", work, "--name", "operator")
                let clientCertificate = try cluster.bed.exec(1, "cat", "\(work)/operator.pem")
                let clientKey = try cluster.bed.exec(1, "cat", "\(work)/operator-key.pem")
                try cluster.bed.exec(2, ["sh", "-c", "umask 077 && printf '%s\\n' \"$1\" > /root/operator.pem && printf '%s\\n' \"$2\" > /root/operator-key.pem",
                                         "sh", clientCertificate, clientKey])
                #expect(try status(["--cacert", "\(tls)/flotilla-ca.pem", "--cert", "/root/operator.pem", "--key", "/root/operator-key.pem",
                                    "-H", "X-Flotilla-Caller: socket \(machine2)"], "https://\(target)/fleet/v1/units") == "403")

                // Machine 2's own certificate: not a user API (403), another machine's schedule
                // (403); its own socket's request, relayed, is served.
                #expect(try status(ownCertificate, "https://\(target)/fleet/v1/units/owned.service", method: "PUT", body: unitBody) == "403")
                #expect(try status(ownCertificate, "https://\(target)/flotilla/v1/peer/schedule/\(machine1)") == "403")
                #expect(try status(ownCertificate + ["-H", "X-Flotilla-Caller: socket \(machine2)"], "https://\(target)/fleet/v1/units") == "200")

                // Nothing of it reached the registry, and machine 1 counted each refusal.
                let units = try cluster.ctl(1, "list-unit-files", "--no-legend")
                #expect(!units.contains("owned.service"), "\(units)")
                #expect(try cluster.bed.execAllowingFailure(1, "test", "-e", "/tmp/owned").succeeded == false)
                let metrics = try cluster.bed.exec(1, "curl", "-sf", "--unix-socket", "/var/run/flotilla.sock", "http://localhost/metrics")
                func counted(_ reason: String) -> Int {
                    metrics.split(separator: "\n").first { $0.hasPrefix("flotilla_peer_api_refused_total{reason=\"\(reason)\"}") }
                        .flatMap { $0.split(separator: " ").last.flatMap { Int($0) } } ?? -1
                }
                #expect(counted("handshake") >= 3, "\(metrics)")
                #expect(counted("forbidden") >= 3, "\(metrics)")
                let journal = try cluster.bed.exec(1, "journalctl", "-u", "flotillad", "--no-pager")
                #expect(journal.contains("API request refused") && journal.contains("peer API: TLS handshake refused"), "\(journal)")

                // The cluster itself still works over it: a write made on machine 3 is relayed to
                // the leader over the peer port, and every machine's agent runs its schedule.
                try cluster.bed.exec(3, ["sh", "-c", "printf '[Service]\\nExecStart=/bin/sleep infinity\\n\\n[X-Fleet]\\nGlobal=true\\n' > /root/everywhere.service"])
                try cluster.ctl(3, "start", "/root/everywhere.service")
                let running = try Testbed.eventually(timeoutSeconds: 60, intervalSeconds: 0.3) {
                    try (1...3).allSatisfy { try cluster.property($0, "everywhere.service", "ActiveState") == "active" }
                }
                #expect(running, "\((try? cluster.diagnostics()) ?? "")")
            }
        }
    }
}
