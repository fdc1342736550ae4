import Foundation
import Testing
import TestSupport

@testable import Daemon

/// flotillad refuses to run Raft and the peer API without the cluster's certificates unless
/// plain TCP was asked for; the certificate must be this machine's.
@Suite(.onBackgroundThreads) struct PeerTLSFilesTests {
    func configuration(_ arguments: [String]) throws -> DaemonConfiguration {
        try DaemonConfiguration.resolve(fileText: nil, environment: [:], arguments: ["--public-ip=127.0.0.1"] + arguments).0
    }

    @Test func theDefaultIsPeerTLSAtTheDefaultPathsAndMissingFilesRefuseTheStart() throws {
        let defaults = try configuration([])
        #expect(defaults.peerTLSEnabled && !defaults.peerInsecurePlaintext)
        #expect([defaults.caFilePath, defaults.certificateFilePath, defaults.keyFilePath]
                == ["/etc/flotilla/tls/flotilla-ca.pem", "/etc/flotilla/tls/peer.pem", "/etc/flotilla/tls/peer-key.pem"])
        let missing = try configuration(["--ca-file=/nonexistent/ca.pem", "--cert-file=/nonexistent/peer.pem", "--key-file=/nonexistent/key.pem"])
        #expect {
            _ = try PeerTLSFiles.load(missing, machineID: "m1")
        } throws: { error in
            let text = "\(error)"
            return text.contains("/nonexistent/ca.pem") && text.contains("flotillactl tls ca create")
                && text.contains("flotillactl tls cert create --server --machine m1 --ip 127.0.0.1") && text.contains("peer_insecure_plaintext=true")
                && Daemon.exitStatus(for: error) == 78
        }
    }

    @Test func plaintextMustBeAskedForAndNeedsNoFile() throws {
        let plain = try configuration(["--peer-insecure-plaintext", "--ca-file=/nonexistent"])
        #expect(!plain.peerTLSEnabled && plain.peerClientTLS == nil)
        #expect(try PeerTLSFiles.load(plain, machineID: "m1") == nil)
        #expect(throws: ConfigurationError.self) { try configuration(["--ca-file=relative.pem"]) }
        #expect(throws: ConfigurationError.self) { try configuration(["--peer-insecure-plaintext=perhaps"]) }
    }

    @Test func onlyThisMachinesPeerCertificateIsUsable() throws {
        let certificates = try ClusterTestCertificates()
        defer { certificates.remove() }
        func load(_ files: (certificateFile: String, keyFile: String), machine: String) throws -> Bool {
            let configuration = try configuration(["--ca-file=\(certificates.caFile)", "--cert-file=\(files.certificateFile)",
                                                   "--key-file=\(files.keyFile)"])
            return try PeerTLSFiles.load(configuration, machineID: machine) != nil
        }
        #expect(try load(try certificates.issue("m1", role: .server), machine: "m1"))
        #expect(try load(try certificates.issue("m1", role: .agent), machine: "m1"))
        #expect(throws: PeerTLSUnusable.self, "another machine's") { try load(try certificates.issue("m2"), machine: "m1") }
        #expect(throws: PeerTLSUnusable.self, "another address") {
            try load(try certificates.issue("m1", ipAddresses: ["10.9.9.9"]), machine: "m1")
        }
        #expect(throws: PeerTLSUnusable.self, "a client certificate") { try load(try certificates.issue("m1", role: .client), machine: "m1") }
    }
}
