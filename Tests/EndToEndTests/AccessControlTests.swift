import Foundation
import Testing
import TestSupport

/// Issue 13, the user API's ACL tokens on real machines: `api_listen` (HTTPS with the machine's
/// certificate) answers 401 without a token, and a token does only what its policies allow,
/// on a voter and on an agent (which has no replica of the log and asks a voter); the unix
/// socket stays the management identity.
@Suite(
    "ACL tokens on the test bed",
    .enabled(if: FlotillaCluster.missingCapability == nil,
             Comment(rawValue: "this host lacks \(FlotillaCluster.missingCapability ?? "nothing")"))
)
struct AccessControlEndToEndTests {
    @Test func tokensDecideWhatAnAPIListenCallerMayDo() async throws {
        try await onOwnThread {
            let tls = FlotillaCluster.tlsDirectory
            try FlotillaCluster.with(machines: 4, tag: "acl", daemonArguments: { bed, machine in
                guard machine == 1 || machine == 4 else { return [] }
                return ["--api-listen=\(try bed.address(machine)):7950", "--api-tls-cert=\(tls)/peer.pem", "--api-tls-key=\(tls)/peer-key.pem"]
            }) { cluster in
                let voter = "https://\(cluster.addresses[0]):7950", agent = "https://\(cluster.addresses[3]):7950"
                /// flotillactl on machine 2 against an api_listen, with `token` if given.
                func remote(_ endpoint: String, _ token: String?, _ arguments: String...) throws -> Testbed.Output {
                    try cluster.bed.runAllowingFailure(["exec", "2", cluster.control, "--endpoint", endpoint, "--ca-file", "\(tls)/flotilla-ca.pem"]
                                                       + (token.map { ["--token", $0] } ?? []) + arguments)
                }
                func status(_ endpoint: String, _ token: String?, _ path: String) throws -> String {
                    try cluster.bed.runAllowingFailure(["exec", "2", "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--cacert", "\(tls)/flotilla-ca.pem"]
                                                       + (token.map { ["-H", "X-Flotilla-Token: \($0)"] } ?? []) + [endpoint + path]).trimmedOutput
                }
                func secret(_ output: Testbed.Output) throws -> String {
                    let line = output.standardOutput.split(separator: "\n").first { $0.hasPrefix("SecretID:") }
                    return try #require(line?.split(separator: "\t").last.map(String.init), "\(output.standardOutput) \(output.standardError)")
                }

                for endpoint in [voter, agent] {
                    #expect(try status(endpoint, nil, "/fleet/v1/units") == "401", "\(endpoint)")
                }
                let management = try secret(try remote(agent, nil, "acl", "bootstrap"))
                // The peer routes carry no ACL: api_listen refuses them whatever the token (they
                // gave any machine's schedule, its gossip keys with it, to anyone).
                let machine2 = try cluster.bed.exec(2, "cat", "/etc/machine-id")
                for endpoint in [voter, agent] {
                    for token in [nil, management] {
                        #expect(try status(endpoint, token, "/flotilla/v1/peer/schedule/\(machine2)") == "403", "\(endpoint)")
                        #expect(try status(endpoint, token, "/flotilla/v1/peer/lease-withholds") == "403", "\(endpoint)")
                    }
                }
                let twice = try remote(voter, nil, "acl", "bootstrap")
                #expect(!twice.succeeded && twice.standardError.contains("already bootstrapped"), "\(twice.standardError)")
                let reader = try secret(try remote(voter, management, "acl", "token", "create", "--name", "reader", "--policy", "read"))
                let deployer = try secret(try remote(agent, management, "acl", "token", "create", "--name", "web", "--policy", "units:web-*.service"))
                #expect(!(try remote(voter, reader, "acl", "token", "list").succeeded), "a read token cannot list tokens")

                try cluster.bed.exec(2, ["sh", "-c", "printf '[Service]\\nExecStart=/bin/sleep infinity\\n' | tee /root/web-1.service > /root/db.service"])
                for endpoint in [voter, agent] {
                    #expect(try status(endpoint, reader, "/fleet/v1/units") == "200", "\(endpoint)")
                    #expect(try status(endpoint, "not-a-token", "/fleet/v1/units") == "403", "\(endpoint)")
                    let refused = try remote(endpoint, reader, "submit", "/root/web-1.service")
                    #expect(!refused.succeeded && refused.standardError.contains("may not write unit web-1.service"), "\(endpoint): \(refused.standardError)")
                }
                let started = try remote(agent, deployer, "start", "/root/web-1.service")
                #expect(started.succeeded, "\(started.standardError)")
                let other = try remote(agent, deployer, "start", "/root/db.service")
                #expect(!other.succeeded && other.standardError.contains("may not write unit db.service"), "\(other.standardError)")
                #expect(try Testbed.eventually(timeoutSeconds: 30) { try cluster.machinesRunning("web-1.service").count == 1 })
                #expect(try cluster.machinesRunning("db.service").isEmpty)

                // A deleted token stops working; the socket never needed one.
                let listing = try remote(voter, management, "acl", "token", "list", "--no-legend").standardOutput
                let readerAccessor = try #require(listing.split(separator: "\n").first { $0.contains("\treader\t") }?.split(separator: "\t").first)
                #expect(try remote(voter, management, "acl", "token", "delete", String(readerAccessor)).succeeded)
                #expect(try Testbed.eventually(timeoutSeconds: 10) { try status(agent, reader, "/fleet/v1/units") == "403" })
                #expect(try cluster.ctl(2, "list-unit-files", "--no-legend").contains("web-1.service"))

                let metrics = try cluster.bed.exec(1, "curl", "-sf", "--unix-socket", "/var/run/flotilla.sock", "http://localhost/metrics")
                let unauthenticated = metrics.split(separator: "\n").first { $0.hasPrefix("flotilla_api_refused_total{reason=\"unauthenticated\"}") }
                #expect(unauthenticated.flatMap { $0.split(separator: " ").last.flatMap { Int($0) } }.map { $0 >= 1 } == true, "\(metrics)")
                let journal = try (1...4).map { try cluster.bed.exec($0, "journalctl", "-u", "flotillad", "--no-pager") }.joined(separator: "\n")
                #expect(journal.contains("API request refused") && journal.contains("ACL token created"), "\(journal.suffix(4000))")
                #expect(!journal.contains(management) && !journal.contains(deployer), "no secret is ever logged")
            }
        }
    }

    /// fleet's client over TLS with a client certificate (fleetctl --ca-file --cert-file
    /// --key-file): its exact exchange (a PUT that creates the unit with no desiredState, then
    /// a PUT of the desiredState) works with a certificate whose policy allows it, is refused
    /// (403) with a read-only one, and a certificate of another CA fails the handshake.
    @Test func fleetsClientWithAClientCertificateOfTheClustersCA() async throws {
        try await onOwnThread {
            let tls = FlotillaCluster.tlsDirectory
            try FlotillaCluster.with(machines: 1, tag: "aclcert", daemonArguments: { bed, _ in
                ["--api-listen=\(try bed.address(1)):7950", "--api-tls-cert=\(tls)/peer.pem", "--api-tls-key=\(tls)/peer-key.pem"]
            }) { cluster in
                let work = "/root/flotilla-ca"
                for (name, policies) in [("deployer", ["units:hello*.service"]), ("viewer", ["read"])] {
                    try cluster.bed.exec(1, [cluster.control, "tls", "cert", "create", "--client", "--ca", "\(work)/flotilla-ca.pem",
                                             "--ca-key", "\(work)/flotilla-ca-key.pem", "--directory", work, "--name", name]
                                            + policies.flatMap { ["--policy", $0] })
                }
                try cluster.bed.exec(1, "mkdir", "-p", "/root/other-ca")
                try cluster.ctl(1, "tls", "ca", "create", "--directory", "/root/other-ca")
                try cluster.ctl(1, "tls", "cert", "create", "--client", "--policy", "management", "--ca", "/root/other-ca/flotilla-ca.pem",
                                "--ca-key", "/root/other-ca/flotilla-ca-key.pem", "--directory", "/root/other-ca", "--name", "stranger")
                let endpoint = "https://\(cluster.addresses[0]):7950/fleet/v1/units/hello.service"
                func put(_ certificate: String, _ body: String) throws -> String {
                    try cluster.bed.runAllowingFailure(["exec", "1", "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--cacert", "\(tls)/flotilla-ca.pem",
                                                        "--cert", "\(certificate).pem", "--key", "\(certificate)-key.pem", "-X", "PUT",
                                                        "-H", "Content-Type: application/json", "--data-binary", body, endpoint]).trimmedOutput
                }
                let create = #"{"name":"hello.service","options":[{"name":"ExecStart","section":"Service","value":"/bin/sleep 1000000"}]}"#
                #expect(try put("\(work)/viewer", create) == "403")
                #expect(try put("/root/other-ca/stranger", create) == "000", "another CA's certificate fails the handshake")
                #expect(try put("\(work)/deployer", create) == "201")
                #expect(try put("\(work)/deployer", #"{"desiredState":"launched","name":"hello.service"}"#) == "204")
                #expect(try Testbed.eventually(timeoutSeconds: 30) { try cluster.machinesRunning("hello.service") == [1] })
                let read = try cluster.bed.execAllowingFailure(1, "curl", "-s", "--cacert", "\(tls)/flotilla-ca.pem", "--cert", "\(work)/viewer.pem",
                                                               "--key", "\(work)/viewer-key.pem", endpoint)
                #expect(read.standardOutput.contains(#""desiredState":"launched""#), "\(read.standardOutput)")
            }
        }
    }
}
