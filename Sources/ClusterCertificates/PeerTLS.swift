import NIOSSL
import X509

/// Who is at the other end of a mutual-TLS connection, read from the certificate it proved it
/// holds the key of (NIOSSL verified the chain against the cluster's CA first).
public struct PeerIdentity: Sendable, Hashable, CustomStringConvertible {
    public var role: ClusterCertificates.Role
    public var machineID: String?
    /// The IPv4 addresses of the certificate's subjectAltName, dotted.
    public var ipAddresses: [String]
    /// A client certificate's ACL policies (empty for peers).
    public var policies: [String]

    public init(role: ClusterCertificates.Role, machineID: String?, ipAddresses: [String], policies: [String] = []) {
        self.role = role
        self.machineID = machineID
        self.ipAddresses = ipAddresses
        self.policies = policies
    }

    public var description: String { "\(role.rawValue) \(machineID ?? "-") \(ipAddresses)" }

    /// Nil when the certificate carries no role, or several (Flotilla's CA issues neither).
    public init?(_ certificate: NIOSSLCertificate) {
        guard let der = try? certificate.toDERBytes(), let parsed = try? Certificate(derEncoded: der),
              let identity = ClusterCertificates.claims(of: parsed) else { return nil }
        var addresses: [String] = []
        if let names = try? parsed.extensions.subjectAlternativeNames {
            for case .ipAddress(let octets) in names where octets.bytes.count == 4 {
                addresses.append(octets.bytes.map(String.init).joined(separator: "."))
            }
        }
        self.init(role: identity.role, machineID: identity.machineID, ipAddresses: addresses, policies: identity.policies)
    }
}

/// TLS 1.3 contexts for peer connections, both directions with certificates required and
/// verified against the cluster's CA (Nomad's and Consul's verify_incoming and verify_outgoing).
/// Hostname checks are replaced by identity checks: a connection is to or from a machine, and
/// the caller compares the certificate's machine, addresses and role with who the peer claims
/// to be (`PeerIdentity`).
public struct PeerTLS: Sendable {
    public let serverContext: NIOSSLContext
    public let clientContext: NIOSSLContext
    /// What this machine's own certificate says (its role, machine and addresses).
    public let localIdentity: PeerIdentity

    public enum Failure: Error, CustomStringConvertible, Equatable {
        case unusable(String)
        public var description: String { switch self { case .unusable(let text): text } }
    }

    /// Reads the CA certificate(s), this machine's certificate and its key, all PEM.
    public static func load(caFile: String, certificateFile: String, keyFile: String) throws(Failure) -> PeerTLS {
        let authorities: [NIOSSLCertificate]
        let chain: [NIOSSLCertificate]
        let key: NIOSSLPrivateKey
        do { authorities = try NIOSSLCertificate.fromPEMFile(caFile) } catch {
            throw .unusable("ca_file \(caFile) is not readable PEM certificates (\(error))")
        }
        do { chain = try NIOSSLCertificate.fromPEMFile(certificateFile) } catch {
            throw .unusable("cert_file \(certificateFile) is not readable PEM certificates (\(error))")
        }
        do { key = try NIOSSLPrivateKey(file: keyFile, format: .pem) } catch {
            throw .unusable("key_file \(keyFile) is not a readable unencrypted PEM private key (\(error))")
        }
        guard !authorities.isEmpty, let leaf = chain.first else {
            throw .unusable("ca_file and cert_file must each hold at least one certificate")
        }
        guard let localIdentity = PeerIdentity(leaf) else {
            throw .unusable("cert_file \(certificateFile) names no Flotilla role (server.flotilla, agent.flotilla, client.flotilla): make it with flotillactl tls cert create")
        }
        func configure(_ configuration: inout TLSConfiguration) {
            configuration.minimumTLSVersion = .tlsv13
            configuration.trustRoots = .certificates(authorities)
            configuration.certificateVerification = .noHostnameVerification
        }
        var server = TLSConfiguration.makeServerConfiguration(certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key))
        configure(&server)
        var client = TLSConfiguration.makeClientConfiguration()
        client.certificateChain = chain.map { .certificate($0) }
        client.privateKey = .privateKey(key)
        configure(&client)
        do {
            return PeerTLS(serverContext: try NIOSSLContext(configuration: server), clientContext: try NIOSSLContext(configuration: client),
                           localIdentity: localIdentity)
        } catch {
            throw .unusable("TLS cannot use cert_file \(certificateFile) with key_file \(keyFile) (\(error)); check that the key is the certificate's")
        }
    }
}
