import Client
import Foundation
import ClusterCertificates
import Raft
import Transport

/// Mutual TLS between peers from `ca_file`, `cert_file` and `key_file`, and the rule that
/// binds a certificate to the Raft node it may speak for.
enum PeerTLSFiles {
    /// This machine's peer TLS contexts, checked to be its own; nil when the three files are not
    /// configured.
    static func load(_ configuration: DaemonConfiguration, machineID: String) throws(PeerTLSUnusable) -> PeerTLS? {
        guard configuration.peerTLSEnabled else { return nil }
        let missing = [configuration.caFilePath, configuration.certificateFilePath, configuration.keyFilePath]
            .filter { !FileManager.default.fileExists(atPath: $0) }
        guard missing.isEmpty else {
            throw PeerTLSUnusable(reason: "no \(missing.joined(separator: ", ")): peers speak mutual TLS with certificates of the cluster's CA. Make the CA once with `flotillactl tls ca create`, then this machine's certificate with `flotillactl tls cert create --server --machine \(machineID) --ip \(configuration.publicIP) --name peer` (see the README's deployment steps), and set ca_file, cert_file and key_file if they live elsewhere; or set peer_insecure_plaintext=true to run Raft and the peer API unauthenticated")
        }
        let contexts: PeerTLS
        do {
            contexts = try PeerTLS.load(caFile: configuration.caFilePath, certificateFile: configuration.certificateFilePath,
                                        keyFile: configuration.keyFilePath)
        } catch {
            throw PeerTLSUnusable(reason: error.description)
        }
        if contexts.localIdentity.role.isPeer, let named = contexts.localIdentity.machineID, named != machineID {
            throw PeerTLSUnusable(reason: "cert_file \(configuration.certificateFilePath) is for machine \(named), but this machine's ID (\(configuration.machineIDPath)) is \(machineID). If this machine was cloned from another's image, give it an ID of its own (rm /etc/machine-id && systemd-machine-id-setup) and a certificate for that ID; else make this machine's certificate with flotillactl tls cert create --server --machine \(machineID) --ip \(configuration.publicIP)")
        }
        guard contexts.localIdentity.role.isPeer, contexts.localIdentity.machineID == machineID,
              contexts.localIdentity.ipAddresses.contains(configuration.publicIP) else {
            throw PeerTLSUnusable(reason: "cert_file \(configuration.certificateFilePath) is for \(contexts.localIdentity), not machine \(machineID) at public_ip \(configuration.publicIP): make this machine's with flotillactl tls cert create --server --machine \(machineID) --ip \(configuration.publicIP)")
        }
        return contexts
    }

    /// How the Raft transport checks the certificates of `contexts`' peers.
    static func transportTLS(_ contexts: PeerTLS?, raftPort: Int) -> TransportTLS? {
        guard let contexts else { return nil }
        return TransportTLS(contexts: contexts, mayAcceptMessage: { from, identity in
            // Raft node IDs are the hash of ip:port (NodeIdentity), so a certificate proves the
            // IDs of its addresses; only server certificates speak Raft (agents' never vote).
            identity.role == .server && identity.ipAddresses.contains { NodeIdentity.nodeID(ip: $0, raftPort: raftPort) == from }
        })
    }
}

extension DaemonConfiguration {
    /// How this peer's API client proves itself to, and checks, other peers: the cluster's CA
    /// alone is trusted, the other peer's certificate must name the address dialled, and this
    /// machine's certificate is presented. Nil in plaintext.
    var peerClientTLS: ClientTLS? {
        guard peerTLSEnabled else { return nil }
        return ClientTLS(caFilePath: caFilePath, certificateFilePath: certificateFilePath, keyFilePath: keyFilePath)
    }
}

/// The peer TLS files are missing, malformed, or not this machine's: a restart cannot fix it.
struct PeerTLSUnusable: Error, CustomStringConvertible {
    let reason: String
    var description: String { "peer TLS (ca_file, cert_file, key_file): \(reason)" }
}
