import ArgumentParser
import FleetAPI
import ClusterCertificates
import Foundation

/// `flotillactl tls`: the cluster's CA and its certificates, made on the operator's machine
/// (as `nomad tls` and `consul tls`). Needs no daemon. Private keys are written mode 0600 and
/// never overwritten.
struct TLS: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tls", abstract: "Create the cluster's certificate authority and certificates.",
        subcommands: [TLSAuthority.self, TLSCertificate.self])
}

struct TLSAuthority: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "ca", abstract: "The certificate authority.",
                                                    subcommands: [Create.self])

    struct Create: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create a CA: flotilla-ca.pem (give it to every machine and client) and flotilla-ca-key.pem (keep it off the cluster).")

        @Option(help: "Where to write the files.") var directory = "."
        @Option(help: "Days the CA is valid.") var days = 1_825
        @Option(name: .customLong("common-name"), help: "The CA's name.") var commonName = "Flotilla CA"

        func run() throws {
            let authority: ClusterCertificates.Issued
            do { authority = try ClusterCertificates.createAuthority(commonName: commonName, validDays: days) } catch {
                throw fail("Unable to create the CA", error)
            }
            try writeIssued(authority, certificate: "\(directory)/flotilla-ca.pem", key: "\(directory)/flotilla-ca-key.pem")
        }
    }
}

struct TLSCertificate: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "cert", abstract: "Certificates signed by the CA.",
                                                    subcommands: [Create.self])

    struct Create: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create a certificate: for a server (may be a Raft voter), an agent (a peer that never votes) or a client of the API.",
            discussion: "Peers' certificates name their machine (--machine, its /etc/machine-id) and its addresses (--ip, --dns).")

        @Flag(help: "A peer that may be a Raft voter.") var server = false
        @Flag(help: "A peer that is never a voter.") var agent = false
        @Flag(help: "A user of the API.") var client = false
        @Option(help: "The machine's ID (/etc/machine-id); required for --server and --agent.") var machine: String?
        @Option(help: "An IPv4 address of the machine (repeatable).") var ip: [String] = []
        @Option(help: "A DNS name of the machine (repeatable).") var dns: [String] = []
        @Option(name: .customLong("common-name"), help: "The certificate's name (default: role and machine).") var commonName: String?
        @Option(help: "The CA certificate.") var ca = "flotilla-ca.pem"
        @Option(name: .customLong("ca-key"), help: "The CA's private key.") var caKey = "flotilla-ca-key.pem"
        @Option(help: "Days the certificate is valid.") var days = 365
        @Option(help: "Where to write the files.") var directory = "."
        @Option(help: "The files' base name (default: ROLE-MACHINE, or client-NAME).") var name: String?
        @Option(help: "For --client: an ACL policy the certificate grants on api_listen (management, read, operator, units:<glob>; repeatable).")
        var policy: [String] = []

        func validate() throws {
            guard [server, agent, client].filter({ $0 }).count == 1 else {
                throw ValidationError("give exactly one of --server, --agent, --client")
            }
            guard policy.isEmpty || client else { throw ValidationError("--policy is for --client certificates") }
            for text in policy {
                do { _ = try ACLPolicy(parsing: text) } catch { throw ValidationError("\(error)") }
            }
        }

        func run() throws {
            let role: ClusterCertificates.Role = server ? .server : agent ? .agent : .client
            let authorityPEM: String
            let authorityKeyPEM: String
            do {
                authorityPEM = try String(contentsOfFile: ca, encoding: .utf8)
                authorityKeyPEM = try String(contentsOfFile: caKey, encoding: .utf8)
            } catch {
                throw fail("Unable to read the CA (\(ca), \(caKey); make one with `flotillactl tls ca create`)", error)
            }
            let issued: ClusterCertificates.Issued
            do {
                issued = try ClusterCertificates.issue(
                    .init(role: role, machineID: machine, ipAddresses: ip, dnsNames: dns, commonName: commonName, validDays: days,
                          policies: policy),
                    authorityCertificatePEM: authorityPEM, authorityKeyPEM: authorityKeyPEM)
            } catch {
                throw fail("Unable to create the certificate", error)
            }
            let base = name ?? "\(role.rawValue)-\(machine ?? commonName ?? "flotilla")"
            try writeIssued(issued, certificate: "\(directory)/\(base).pem", key: "\(directory)/\(base)-key.pem")
        }
    }
}

/// Writes the certificate (0644) and the key (0600, created exclusively: an existing key is
/// never replaced), then prints both paths.
func writeIssued(_ issued: ClusterCertificates.Issued, certificate: String, key: String) throws {
    for path in [certificate, key] where FileManager.default.fileExists(atPath: path) {
        throw fail("Unable to write \(path)", CocoaError(.fileWriteFileExists, userInfo: [NSFilePathErrorKey: path]))
    }
    guard FileManager.default.createFile(atPath: key, contents: Data(issued.privateKeyPEM.utf8), attributes: [.posixPermissions: 0o600]),
          FileManager.default.createFile(atPath: certificate, contents: Data(issued.certificatePEM.utf8), attributes: [.posixPermissions: 0o644])
    else {
        throw fail("Unable to write \(certificate) and \(key)", CocoaError(.fileWriteUnknown))
    }
    out("==> Wrote \(certificate)")
    out("==> Wrote \(key)")
}
