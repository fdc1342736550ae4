import ArgumentParser
import FleetAPI
import Foundation

/// `flotillactl keyring`: the gossip encryption keys (as `nomad operator gossip keyring` and
/// `consul keyring`).
struct Keyring: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Manage the gossip encryption keyring.",
        discussion: """
            Rotating the key without downtime: `install` a new key (every machine then opens packets sealed with \
            either), `use` it (every machine seals with it), then `remove` the old one. Each step is committed to the \
            replicated log and reaches every machine in its schedule, which also rewrites its gossip_keyring_file.
            """,
        subcommands: [GenerateKey.self, ListKeys.self, InstallKey.self, UseKey.self, RemoveKey.self])
}

/// `flotillactl keyring list`: the ring the leader holds, by fingerprint.
struct ListKeys: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List the cluster's gossip keys by fingerprint, the primary first.")
    @OptionGroup var global: GlobalOptions
    @Flag(name: .customLong("no-legend"), help: "Do not print a legend (column headers).") var noLegend = false

    func run() async throws {
        let client = try global.makeClient()
        let keyring: FlotillaGossipKeyring
        do { keyring = try await client.gossipKeyring() } catch { throw fail("Error retrieving the gossip keyring", error) }
        if !noLegend { out("FINGERPRINT\tPRIMARY") }
        for key in keyring.keys { out("\(key.fingerprint)\t\(key.isPrimary ? "yes" : "-")") }
        if !keyring.isReplicated, !noLegend {
            err("(the leader's keyring file: no key was installed through flotillactl yet)")
        }
    }
}

/// One rotation step against the leader.
private func changeKeyring(_ operation: FlotillaKeyringChange.Operation, _ key: String, global: GlobalOptions) async throws {
    let client = try global.makeClient()
    do {
        try await client.changeGossipKeyring(FlotillaKeyringChange(operation: operation, key: key))
    } catch {
        throw fail("Error: keyring \(operation.rawValue) failed", error)
    }
    switch operation {
    case .install: out("Installed the key on every machine's gossip keyring")
    case .use: out("Every machine now encrypts gossip with the key")
    case .remove: out("Removed the key from every machine's gossip keyring")
    }
}

struct InstallKey: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "install", abstract: "Add a key (base64, from keyring generate) to every machine's keyring.")
    @OptionGroup var global: GlobalOptions
    @Argument(help: "The base64 key.") var key: String
    func run() async throws { try await changeKeyring(.install, key, global: global) }
}

struct UseKey: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "use", abstract: "Make an installed key the one gossip is encrypted with.")
    @OptionGroup var global: GlobalOptions
    @Argument(help: "The base64 key or its fingerprint (keyring list).") var key: String
    func run() async throws { try await changeKeyring(.use, key, global: global) }
}

struct RemoveKey: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "remove", abstract: "Take a key that no longer encrypts off every machine's keyring.")
    @OptionGroup var global: GlobalOptions
    @Argument(help: "The base64 key or its fingerprint (keyring list).") var key: String
    func run() async throws { try await changeKeyring(.remove, key, global: global) }
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
