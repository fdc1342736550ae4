import UnitFile

/// A unit the cluster should know about: plain units and template instances alike (an instance
/// is scheduled as a unit of its own, from its template's file).
public struct UnitRecord: Hashable, Sendable {
    public let name: UnitName
    /// The canonical file, byte for byte what agents write to disk.
    public internal(set) var file: [UInt8]
    public internal(set) var hash: UnitHash
    /// The `[X-Fleet]` options read for this unit's name. Derived from `file` on apply (and on
    /// restore), never stored, so they cannot disagree with it.
    public internal(set) var options: FleetOptions
    public internal(set) var targetState: TargetState
    /// Where the scheduler placed the unit; always nil for global units.
    public internal(set) var machine: MachineID?
    /// The registry version (log index) at which the target last left `inactive`; 0 while
    /// inactive. It orders global units that conflict with each other: the one launched first
    /// keeps the machines (fleet's TestScheduleGlobalConflicts), the same on every replica.
    public internal(set) var activeSince: UInt64 = 0
}

/// A template (`name@.type`): stored so instances can be created from it, never scheduled.
public struct TemplateRecord: Hashable, Sendable {
    public let name: UnitName
    public internal(set) var file: [UInt8]
    public internal(set) var hash: UnitHash
}

/// What the registry knows of a machine: its metadata, whether it is drained, and its lease
/// epoch. Liveness is not here: the voters' lease ledgers and membership hold it, outside the
/// replicated state; only the end of a lease (`revokeLease`) is a command.
public struct MachineRecord: Hashable, Sendable {
    public let id: MachineID
    /// Sorted by key, one value per key.
    public internal(set) var metadata: [MetadataEntry]
    public internal(set) var isDrained: Bool
    /// The epoch the machine's lease is granted at; each revocation adds one. A machine without
    /// a record is at epoch 0.
    public internal(set) var leaseEpoch: UInt64 = 0

    init(id: MachineID, metadata: [MetadataEntry], isDrained: Bool, leaseEpoch: UInt64 = 0) {
        self.id = id
        self.metadata = metadata
        self.isDrained = isDrained
        self.leaseEpoch = leaseEpoch
    }

    /// The metadata as fleet's `map[string]string`, for `FleetOptions.isSatisfied(byMachineMetadata:)`.
    public var metadataByKey: [String: String] {
        Dictionary(metadata.map { ($0.key, $0.value) }, uniquingKeysWith: { first, _ in first })
    }
}

/// The last answer given to one client (Raft thesis §6.3), kept so that a retry gets it again.
public struct ClientSession: Hashable, Sendable {
    public let clientID: UInt64
    public internal(set) var lastSequence: UInt64
    /// The log index of the client's last command: the oldest is forgotten first.
    public internal(set) var lastIndex: UInt64
    public internal(set) var lastResult: RegistryResult
}

/// The cluster's gossip keyring as the replicated log holds it: raw AES-256 keys, the primary
/// first. The registry checks only their shape; membership uses them. They are secrets: the
/// Raft log and snapshots live in flotillad's data directory (0700, root's), and peers receive
/// them only over mutual TLS (their schedule).
public struct GossipKeyringRecord: Hashable, Sendable {
    public static let keyBytes = 32
    public static let keysMax = 8
    public let keys: [[UInt8]]

    /// Nil with the reason when `keys` is not 1...keysMax distinct keys of keyBytes bytes.
    public static func validate(_ keys: [[UInt8]]) -> String? {
        guard !keys.isEmpty else { return "no key: a keyring needs one to encrypt with" }
        guard keys.count <= keysMax else { return "\(keys.count) keys, at most \(keysMax)" }
        if let wrong = keys.first(where: { $0.count != keyBytes }) { return "a key of \(wrong.count) bytes; keys are \(keyBytes) bytes" }
        guard Set(keys).count == keys.count else { return "a key appears twice" }
        return nil
    }

    init(keys: [[UInt8]]) {
        self.keys = keys
    }
}

/// An ACL token as the replicated log holds it: never the secret, only its SHA-256 (the leader
/// hashes what a caller presents and compares). `policies` are the token's rules as text
/// (`management`, `read`, `operator`, `units:<glob>`), checked by the leader before it proposes.
public struct ACLTokenRecord: Hashable, Sendable {
    public static let tokensMax = 4096
    public static let textLengthMax = 255
    public static let policiesMax = 16
    public static let secretHashBytes = 32

    public let accessorID: String
    public let secretHash: [UInt8]
    public let name: String
    public let policies: [String]

    public init(accessorID: String, secretHash: [UInt8], name: String, policies: [String]) {
        self.accessorID = accessorID
        self.secretHash = secretHash
        self.name = name
        self.policies = policies
    }

    /// Nil, or why the record cannot be stored.
    var invalidReason: String? {
        guard !accessorID.isEmpty, accessorID.utf8.count <= 64 else { return "an accessor ID of 1 to 64 bytes" }
        guard secretHash.count == Self.secretHashBytes else { return "a secret hash of \(Self.secretHashBytes) bytes" }
        guard name.utf8.count <= Self.textLengthMax else { return "a name of at most \(Self.textLengthMax) bytes" }
        guard !policies.isEmpty, policies.count <= Self.policiesMax,
              policies.allSatisfy({ !$0.isEmpty && $0.utf8.count <= Self.textLengthMax }) else {
            return "1 to \(Self.policiesMax) policies of at most \(Self.textLengthMax) bytes"
        }
        return nil
    }
}
