import FleetAPI
import Foundation
import HTTPAPI
import Logging
import MembershipShell
import Registry
import Storage

/// Rotating the gossip key without downtime, as memberlist's keyring and `nomad operator gossip
/// keyring` do: `install` the new key everywhere (every machine then opens packets sealed with
/// either key), `use` it (machines seal with it; the others still open it), then `remove` the
/// old one. The ring lives in the replicated log; every machine takes it from its schedule, which
/// crosses the peer port's mutual TLS, so a machine that missed gossip while the key changed
/// still learns the new ring and comes back.
///
/// Each step waits for the one before to reach every machine only as long as a schedule takes
/// to arrive (milliseconds): an operator who removes the old key right after `use` can drop a
/// lagging machine's packets for that moment. `flotillactl keyring list` shows the ring the
/// leader holds.
enum GossipKeyringRotation {
    /// The ring after `change`, from `current` (the primary first). Pure.
    static func apply(_ change: FlotillaKeyringChange, to current: [[UInt8]]) throws(APIError) -> [[UInt8]] {
        switch change.operation {
        case .install:
            guard let key = Data(base64Encoded: change.key).map(Array.init), key.count == GossipKeyringRecord.keyBytes else {
                throw .badRequest("install takes a base64 AES-256 key of \(GossipKeyringRecord.keyBytes) bytes (flotillactl keyring generate), not \(change.key.debugDescription)")
            }
            if current.contains(key) { return current }
            guard current.count < GossipKeyringRecord.keysMax else {
                throw .conflict("the keyring holds its limit of \(GossipKeyringRecord.keysMax) keys: remove one first")
            }
            return current + [key]
        case .use:
            let key = try installed(change.key, in: current)
            return [key] + current.filter { $0 != key }
        case .remove:
            let key = try installed(change.key, in: current)
            guard key != current.first else {
                throw .conflict("\(GossipKeyring.fingerprint(of: key)) is the primary key (it encrypts): use another key first")
            }
            return current.filter { $0 != key }
        }
    }

    /// The installed key named by its base64 or its fingerprint.
    private static func installed(_ text: String, in current: [[UInt8]]) throws(APIError) -> [UInt8] {
        let decoded = Data(base64Encoded: text).map(Array.init)
        guard let key = current.first(where: { $0 == decoded || GossipKeyring.fingerprint(of: $0) == text.lowercased() }) else {
            throw .notFound("no installed key is \(text.count == 16 ? "fingerprint " + text : "that key"); flotillactl keyring list shows them")
        }
        return key
    }

    static func listing(_ keys: [[UInt8]], isReplicated: Bool) -> FlotillaGossipKeyring {
        FlotillaGossipKeyring(keys: keys.enumerated().map { index, key in
            FlotillaGossipKey(fingerprint: GossipKeyring.fingerprint(of: key), isPrimary: index == 0)
        }, isReplicated: isReplicated)
    }
}

extension Node {
    /// The ring a keyring change starts from: the replicated one, or before the first change the
    /// leader's own (every machine's file holds the cluster's ring). Nil when gossip is plain.
    func currentGossipKeys(_ state: RegistryState) async -> [[UInt8]]? {
        if let record = state.gossipKeyring { return record.keys }
        return ((try? await membership.keyring()) ?? nil)?.keys
    }

    /// Takes up the ring a schedule carries: membership seals and opens with it from now on, and
    /// the keyring file is replaced (durably) so that a restart starts with it. A machine that
    /// gossips in plain text (gossip_insecure_plaintext) ignores it.
    func adoptGossipKeys(_ encoded: [String]?) async {
        guard let encoded, let current = (try? await membership.keyring()) ?? nil else { return }
        let keys = encoded.compactMap { Data(base64Encoded: $0).map(Array.init) }
        guard keys.count == encoded.count, keys != current.keys else { return }
        let ring: GossipKeyring
        do {
            ring = try GossipKeyring(keys: keys)
        } catch {
            logger.error("the replicated gossip keyring is unusable; keeping this machine's", metadata: ["error": "\(error)"])
            return
        }
        do {
            try await membership.setKeyring(ring)
        } catch {
            return
        }
        do {
            try DurableFile.replace(configuration.gossipKeyringPath, with: Array(ring.fileText().utf8), mode: 0o600)
        } catch {
            logger.error("gossip keyring in use but not saved: a restart would start with the old one",
                         metadata: ["file": "\(configuration.gossipKeyringPath)", "error": "\(error)"])
        }
        logger.notice("gossip keyring changed", metadata: [
            "keys": "\(ring.keys.count)", "primary": "\(GossipKeyring.fingerprint(of: ring.primaryKey))",
        ])
    }
}
