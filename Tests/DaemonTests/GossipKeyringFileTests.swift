import TestSupport
import Foundation
import Logging
import MembershipShell
import Testing

@testable import Daemon

/// flotillad refuses to gossip without a keyring unless plain text was asked for.
@Suite(.onBackgroundThreads) struct GossipKeyringFileTests {
    let logger = Logger(label: "test")

    func configuration(_ arguments: [String]) throws -> DaemonConfiguration {
        try DaemonConfiguration.resolve(fileText: nil, environment: [:], arguments: ["--public-ip=10.0.0.1"] + arguments).0
    }

    func temporaryFile(_ text: String) throws -> String {
        let path = NSTemporaryDirectory() + "gossip-\(UInt64.random(in: 0...UInt64.max)).keyring"
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: path)
        return path
    }

    @Test func theDefaultIsAKeyringFileAndAMissingOneRefusesTheStart() throws {
        let defaults = try configuration([])
        #expect(defaults.gossipKeyringPath == "/etc/flotilla/gossip.keyring" && !defaults.gossipInsecurePlaintext)
        let missing = try configuration(["--gossip-keyring-file=/nonexistent/gossip.keyring"])
        #expect {
            _ = try GossipKeyringFile.load(missing, logger: logger)
        } throws: { error in
            let text = "\(error)"
            return text.contains("/nonexistent/gossip.keyring") && text.contains("does not exist")
                && text.contains("flotillactl keyring generate") && text.contains("gossip_insecure_plaintext=true")
                && Daemon.exitStatus(for: error) == 78
        }
    }

    @Test func aMalformedKeyringNamesItsLine() throws {
        let path = try temporaryFile("# keys\nAAAA\n")
        defer { try? FileManager.default.removeItem(atPath: path) }
        #expect {
            _ = try GossipKeyringFile.load(try configuration(["--gossip-keyring-file=\(path)"]), logger: logger)
        } throws: { error in "\(error)".contains("line 2: a key is 32 bytes") }
    }

    @Test func aKeyringFileIsReadPrimaryFirst() throws {
        let keyring = try GossipKeyring(keys: [GossipKeyring.generateKey(), GossipKeyring.generateKey()])
        let path = try temporaryFile(keyring.fileText())
        defer { try? FileManager.default.removeItem(atPath: path) }
        let loaded = try GossipKeyringFile.load(try configuration(["--gossip-keyring-file=\(path)"]), logger: logger)
        #expect(loaded == keyring)
    }

    @Test func plaintextMustBeAskedForAndNeedsNoFile() throws {
        let plain = try configuration(["--gossip-insecure-plaintext", "--gossip-keyring-file=/nonexistent"])
        #expect(plain.gossipInsecurePlaintext)
        #expect(try GossipKeyringFile.load(plain, logger: logger) == nil)
        #expect(throws: ConfigurationError.self) { try configuration(["--gossip-keyring-file=relative.keyring"]) }
        #expect(throws: ConfigurationError.self) { try configuration(["--gossip-insecure-plaintext=perhaps"]) }
    }
}
