import ClusterCertificates
import Foundation

/// A throwaway cluster CA made with Flotilla's own tooling (`ClusterCertificates`), and the
/// certificates it issues, as files in a temporary directory: for tests of mutual TLS.
public struct ClusterTestCertificates: Sendable {
    public let directory: String
    public let authority: ClusterCertificates.Issued
    public var caFile: String { "\(directory)/ca.pem" }

    public init() throws {
        directory = NSTemporaryDirectory() + "cluster-certificates-\(UInt64.random(in: 0...UInt64.max))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        authority = try ClusterCertificates.createAuthority()
        try authority.certificatePEM.write(toFile: caFile, atomically: true, encoding: .utf8)
    }

    /// Writes a certificate of `role` naming `machine` and `ipAddresses`, signed by this CA;
    /// returns its certificate and key files.
    public func issue(_ machine: String, role: ClusterCertificates.Role = .server,
                      ipAddresses: [String] = ["127.0.0.1"]) throws -> (certificateFile: String, keyFile: String) {
        let issued = try ClusterCertificates.issue(.init(role: role, machineID: role.isPeer ? machine : nil, ipAddresses: ipAddresses),
                                                   authorityCertificatePEM: authority.certificatePEM, authorityKeyPEM: authority.privateKeyPEM)
        let base = "\(directory)/\(role.rawValue)-\(machine)"
        try issued.certificatePEM.write(toFile: base + ".pem", atomically: true, encoding: .utf8)
        try issued.privateKeyPEM.write(toFile: base + "-key.pem", atomically: true, encoding: .utf8)
        return (base + ".pem", base + "-key.pem")
    }

    /// A client certificate granting `policies` on api_listen; returns its files.
    public func issuePolicies(_ name: String, _ policies: [String]) throws -> (certificateFile: String, keyFile: String) {
        let issued = try ClusterCertificates.issue(.init(role: .client, machineID: nil, policies: policies),
                                                   authorityCertificatePEM: authority.certificatePEM, authorityKeyPEM: authority.privateKeyPEM)
        let base = "\(directory)/client-\(name)"
        try issued.certificatePEM.write(toFile: base + ".pem", atomically: true, encoding: .utf8)
        try issued.privateKeyPEM.write(toFile: base + "-key.pem", atomically: true, encoding: .utf8)
        return (base + ".pem", base + "-key.pem")
    }

    /// The peer TLS contexts of a certificate of `role` naming `machine` and 127.0.0.1.
    public func peer(_ machine: String, role: ClusterCertificates.Role = .server) throws -> PeerTLS {
        let files = try issue(machine, role: role)
        return try PeerTLS.load(caFile: caFile, certificateFile: files.certificateFile, keyFile: files.keyFile)
    }

    public func remove() { try? FileManager.default.removeItem(atPath: directory) }
}
