import ClusterCertificates
import Raft
import Transport

/// Mutual TLS between peers from `ca_file`, `cert_file` and `key_file`, and the rule that
/// binds a certificate to the Raft node it may speak for.
enum PeerTLSFiles {
    /// Nil when the three files are not configured.
    static func transportTLS(_ configuration: DaemonConfiguration, machineID: String) throws(PeerTLSUnusable) -> TransportTLS? {
        guard configuration.peerTLSEnabled else { return nil }
        let contexts: PeerTLS
        do {
            contexts = try PeerTLS.load(caFile: configuration.caFilePath, certificateFile: configuration.certificateFilePath,
                                        keyFile: configuration.keyFilePath)
        } catch {
            throw PeerTLSUnusable(reason: error.description)
        }
        guard contexts.localIdentity.role.isPeer, contexts.localIdentity.machineID == machineID,
              contexts.localIdentity.ipAddresses.contains(configuration.publicIP) else {
            throw PeerTLSUnusable(reason: "cert_file \(configuration.certificateFilePath) is for \(contexts.localIdentity), not machine \(machineID) at public_ip \(configuration.publicIP): make this machine's with flotillactl tls cert create --server --machine \(machineID) --ip \(configuration.publicIP)")
        }
        let raftPort = configuration.raftPort
        return TransportTLS(contexts: contexts, mayAcceptMessage: { from, identity in
            // Raft node IDs are the hash of ip:port (NodeIdentity), so a certificate proves the
            // IDs of its addresses; only server certificates speak Raft (agents' never vote).
            identity.role == .server && identity.ipAddresses.contains { NodeIdentity.nodeID(ip: $0, raftPort: raftPort) == from }
        })
    }
}

/// The peer TLS files are missing, malformed, or not this machine's: a restart cannot fix it.
struct PeerTLSUnusable: Error, CustomStringConvertible {
    let reason: String
    var description: String { "peer TLS (ca_file, cert_file, key_file): \(reason)" }
}
