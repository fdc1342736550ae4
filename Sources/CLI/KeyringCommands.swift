import ArgumentParser
import Foundation

/// `flotillactl keyring`: the gossip encryption keys (as `nomad operator gossip keyring` and
/// `consul keyring`).
struct Keyring: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Manage the gossip encryption keyring.",
        subcommands: [GenerateKey.self])
}

/// Prints a new key in the keyring file's format, so that `flotillactl keyring generate >
/// /etc/flotilla/gossip.keyring` makes a cluster's first keyring. Needs no daemon.
struct GenerateKey: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "generate",
        abstract: "Print a new gossip key (AES-256, base64), as a keyring file.",
        discussion: "Copy the output to every machine's gossip_keyring_file (default /etc/flotilla/gossip.keyring), mode 0600.")

    func run() throws {
        // SystemRandomNumberGenerator reads getrandom(2) on Linux: the kernel's CSPRNG.
        var generator = SystemRandomNumberGenerator()
        let key = (0..<32).map { _ in UInt8.random(in: 0...255, using: &generator) }
        out("# Flotilla gossip keyring: one base64 AES-256 key per line; the first one encrypts.")
        out(Data(key).base64EncodedString())
    }
}
