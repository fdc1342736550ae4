import Foundation
import Logging
import MembershipShell

/// Reads the gossip keyring at start. A daemon without one refuses to start unless plaintext
/// gossip was asked for (`gossip_insecure_plaintext=true`), and then says so at every start:
/// without the key, anyone who reaches the gossip port could declare any member dead.
enum GossipKeyringFile {
    static func load(_ configuration: DaemonConfiguration, logger: Logger) throws(GossipKeyringUnavailable) -> GossipKeyring? {
        if configuration.gossipInsecurePlaintext {
            logger.warning("gossip is not encrypted (gossip_insecure_plaintext=true): anyone who reaches gossip_port \(configuration.gossipPort) can join the membership and declare members dead")
            return nil
        }
        let path = configuration.gossipKeyringPath
        guard FileManager.default.fileExists(atPath: path) else {
            throw GossipKeyringUnavailable(path: path, reason: "the file does not exist")
        }
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw GossipKeyringUnavailable(path: path, reason: "it cannot be read as text")
        }
        let keyring: GossipKeyring
        do {
            keyring = try GossipKeyring.parse(text)
        } catch {
            throw GossipKeyringUnavailable(path: path, reason: error.description)
        }
        if let attributes = try? FileManager.default.attributesOfItem(atPath: path),
           let mode = attributes[.posixPermissions] as? Int, mode & 0o077 != 0 {
            logger.warning("the gossip keyring \(path) is readable by others (mode \(String(mode, radix: 8))): chmod 600 it")
        }
        logger.info("gossip is encrypted with \(keyring.keys.count) key(s) from \(path)")
        return keyring
    }
}

/// The keyring is missing or malformed: a configuration error that a restart cannot fix.
struct GossipKeyringUnavailable: Error, CustomStringConvertible {
    let path: String
    let reason: String

    var description: String {
        "no usable gossip keyring at \(path) (gossip_keyring_file): \(reason). Create one on one machine with "
            + "`flotillactl keyring generate > \(path)`, copy it to every machine (chmod 600), and start flotillad again; "
            + "or set gossip_insecure_plaintext=true to gossip unencrypted"
    }
}
