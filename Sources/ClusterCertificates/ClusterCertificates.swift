import Crypto
import Foundation
import SwiftASN1
import X509

/// The cluster's certificate authority and the certificates it issues, as `nomad tls` and
/// `consul tls` make them: ECDSA P-256, a self-signed CA, and leaf certificates whose
/// subjectAltName says who holds them, so that a peer's identity and role come from its
/// certificate and never from what it claims in a message.
///
/// - Role: a DNS name `server.flotilla` (may be a Raft voter), `agent.flotilla` (a peer that
///   never votes) or `client.flotilla` (a user of the API), as Nomad's `server.<region>.nomad`.
/// - Machine: a URI `urn:flotilla:machine:<machine ID>` on peer certificates.
/// - Addresses: the machine's IPs and names, so that ordinary hostname verification (curl,
///   openssl, fleet's client) also works.
public enum ClusterCertificates {
    public enum Role: String, Sendable, CaseIterable {
        case server, agent, client

        /// The subjectAltName DNS entry that carries the role.
        public var dnsName: String { "\(rawValue).flotilla" }
        public var isPeer: Bool { self != .client }
    }

    public static let machineURIPrefix = "urn:flotilla:machine:"
    public static let policyURIPrefix = "urn:flotilla:policy:"

    /// A PEM certificate and its PEM private key (PKCS#8).
    public struct Issued: Sendable {
        public var certificatePEM: String
        public var privateKeyPEM: String
    }

    public struct Request: Sendable {
        public var role: Role
        /// Required for peers (server, agent); nil for clients.
        public var machineID: String?
        public var ipAddresses: [String]
        public var dnsNames: [String]
        public var commonName: String
        public var validDays: Int
        /// A client certificate's ACL policies (`read`, `units:web-*`, ...): what `api_listen`
        /// lets its holder do, as a token with these policies would.
        public var policies: [String]

        public init(role: Role, machineID: String?, ipAddresses: [String] = [], dnsNames: [String] = [],
                    commonName: String? = nil, validDays: Int = 365, policies: [String] = []) {
            self.role = role
            self.machineID = machineID
            self.ipAddresses = ipAddresses
            self.dnsNames = dnsNames
            self.policies = policies
            self.commonName = commonName ?? machineID.map { "\(role.rawValue) \($0)" } ?? "\(role.rawValue).flotilla"
            self.validDays = validDays
        }
    }

    public enum Failure: Error, CustomStringConvertible, Equatable {
        case invalid(String)
        case unreadable(String)

        public var description: String {
            switch self {
            case .invalid(let text), .unreadable(let text): text
            }
        }
    }

    /// A new self-signed CA, valid from an hour ago (clocks differ) for `validDays`.
    public static func createAuthority(commonName: String = "Flotilla CA", validDays: Int = 1_825, now: Date = Date()) throws -> Issued {
        guard (1...36_500).contains(validDays) else { throw Failure.invalid("--days must be 1...36500, got \(validDays)") }
        let key = P256.Signing.PrivateKey()
        let privateKey = Certificate.PrivateKey(key)
        let name = try DistinguishedName {
            OrganizationName("Flotilla")
            CommonName(commonName)
        }
        let publicKey = Certificate.PublicKey(key.publicKey)
        let certificate = try Certificate(
            version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: publicKey,
            notValidBefore: now.addingTimeInterval(-3_600), notValidAfter: now.addingTimeInterval(Double(validDays) * 86_400),
            issuer: name, subject: name, signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.isCertificateAuthority(maxPathLength: 0))
                Critical(KeyUsage(digitalSignature: true, keyCertSign: true, cRLSign: true))
                SubjectKeyIdentifier(hash: publicKey)
            },
            issuerPrivateKey: privateKey)
        return Issued(certificatePEM: try certificate.serializeAsPEM().pemString, privateKeyPEM: try privateKey.serializeAsPEM().pemString)
    }

    /// A leaf certificate for `request`, signed by the CA given as PEM.
    public static func issue(_ request: Request, authorityCertificatePEM: String, authorityKeyPEM: String, now: Date = Date()) throws -> Issued {
        guard (1...36_500).contains(request.validDays) else { throw Failure.invalid("--days must be 1...36500, got \(request.validDays)") }
        if request.role.isPeer {
            guard let machineID = request.machineID, !machineID.isEmpty, machineID.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7f }) else {
                throw Failure.invalid("a \(request.role.rawValue) certificate needs --machine (the machine's /etc/machine-id)")
            }
        }
        let authority: Certificate
        let authorityKey: Certificate.PrivateKey
        do { authority = try Certificate(pemEncoded: authorityCertificatePEM) } catch {
            throw Failure.unreadable("the CA certificate is not a PEM certificate: \(error)")
        }
        do { authorityKey = try Certificate.PrivateKey(pemEncoded: authorityKeyPEM) } catch {
            throw Failure.unreadable("the CA key is not a PEM private key: \(error)")
        }
        guard authorityKey.publicKey == authority.publicKey else {
            throw Failure.invalid("the CA key does not belong to the CA certificate")
        }
        var names: [GeneralName] = [.dnsName(request.role.dnsName)]
        if let machineID = request.machineID { names.append(.uniformResourceIdentifier(machineURIPrefix + machineID)) }
        if !request.policies.isEmpty {
            guard request.role == .client else { throw Failure.invalid("--policy is for client certificates (peers' rights come from their role)") }
            guard request.policies.allSatisfy({ !$0.isEmpty && $0.utf8.allSatisfy { $0 > 0x20 && $0 < 0x7f } }) else {
                throw Failure.invalid("a policy is printable text without spaces, as read or units:web-*")
            }
            names += request.policies.map { .uniformResourceIdentifier(policyURIPrefix + $0) }
        }
        names += request.dnsNames.map { .dnsName($0) }
        for address in request.ipAddresses {
            guard let bytes = ipv4Bytes(address) else { throw Failure.invalid("--ip \(address) is not an IPv4 address") }
            names.append(.ipAddress(ASN1OctetString(contentBytes: ArraySlice(bytes))))
        }
        let key = P256.Signing.PrivateKey()
        let privateKey = Certificate.PrivateKey(key)
        let publicKey = Certificate.PublicKey(key.publicKey)
        let usages: [ExtendedKeyUsage.Usage] = request.role.isPeer ? [.serverAuth, .clientAuth] : [.clientAuth]
        let certificate = try Certificate(
            version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: publicKey,
            notValidBefore: now.addingTimeInterval(-3_600), notValidAfter: now.addingTimeInterval(Double(request.validDays) * 86_400),
            issuer: authority.subject,
            subject: try DistinguishedName {
                OrganizationName("Flotilla")
                CommonName(request.commonName)
            },
            signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.notCertificateAuthority)
                Critical(KeyUsage(digitalSignature: true))
                try ExtendedKeyUsage(usages)
                SubjectAlternativeNames(names)
                SubjectKeyIdentifier(hash: publicKey)
                if let identifier = try? authority.extensions.subjectKeyIdentifier {
                    AuthorityKeyIdentifier(keyIdentifier: identifier.keyIdentifier)
                }
            },
            issuerPrivateKey: authorityKey)
        return Issued(certificatePEM: try certificate.serializeAsPEM().pemString, privateKeyPEM: try privateKey.serializeAsPEM().pemString)
    }

    /// What a certificate says about its holder: the role and machine of the SAN conventions
    /// above (nil when it carries none, or more than one role).
    public static func identity(of certificate: Certificate) -> (role: Role, machineID: String?)? {
        claims(of: certificate).map { ($0.role, $0.machineID) }
    }

    /// Everything a certificate of this CA says: its role, machine and (a client's) policies.
    /// Nil when it names no role or several, or several machines (Flotilla's CA issues neither).
    public static func claims(of certificate: Certificate) -> (role: Role, machineID: String?, policies: [String])? {
        guard let names = try? certificate.extensions.subjectAlternativeNames else { return nil }
        var roles: [Role] = []
        var machines: [String] = []
        var policies: [String] = []
        for name in names {
            switch name {
            case .dnsName(let dns): if let role = Role.allCases.first(where: { $0.dnsName == dns }) { roles.append(role) }
            case .uniformResourceIdentifier(let uri) where uri.hasPrefix(machineURIPrefix):
                machines.append(String(uri.dropFirst(machineURIPrefix.count)))
            case .uniformResourceIdentifier(let uri) where uri.hasPrefix(policyURIPrefix):
                policies.append(String(uri.dropFirst(policyURIPrefix.count)))
            default: break
            }
        }
        guard roles.count == 1, machines.count <= 1 else { return nil }
        return (roles[0], machines.first, roles[0] == .client ? policies : [])
    }

    static func ipv4Bytes(_ text: String) -> [UInt8]? {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var bytes: [UInt8] = []
        for part in parts {
            guard !part.isEmpty, part.count <= 3, part.allSatisfy(\.isNumber), let value = UInt8(part) else { return nil }
            bytes.append(value)
        }
        return bytes
    }
}
