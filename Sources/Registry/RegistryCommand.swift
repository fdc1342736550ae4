import UnitFile

/// A change to the cluster's desired state, proposed through Raft and applied by every replica
/// in log order (`RegistryState.apply(_:at:)`).
///
/// Batches exist so that a scheduling round over 10,000 units is a handful of log entries, not
/// 10,000; each batch is bounded by `RegistryLimits.batchCountMax` and is validated as a whole:
/// one invalid element rejects the batch and changes nothing, so a replica never holds half a
/// decision (the scheduler recomputes from the newer state on its next round).
public struct RegistryCommand: Hashable, Sendable {
    /// Set by clients that may retry (nil for the leader's own scheduling commands, whose retry
    /// is the next scheduling round).
    public var stamp: ClientStamp?
    public var operation: RegistryOperation

    public init(_ operation: RegistryOperation, stamp: ClientStamp? = nil) {
        self.operation = operation
        self.stamp = stamp
    }
}

public enum RegistryOperation: Hashable, Sendable {
    /// Creates units (templates are stored as templates, never scheduled). Resubmitting a unit
    /// with the same hash changes nothing; with another hash it is refused (use `replaceUnitFiles`).
    case submitUnits([UnitSubmission])
    /// Gives existing units (or templates) a new file; target state and placement are kept, and
    /// the scheduler moves the unit if its new `[X-Fleet]` options no longer fit its machine.
    case replaceUnitFiles([UnitSubmission])
    case setTargetState([UnitName], TargetState)
    /// fleet's `PUT /fleet/v1/units/{name}`, decided when it applies, as one step: a unit (or
    /// template) the registry does not hold is created (from `file`, or for an instance from its
    /// template) at the submission's target, or `inactive` without `targetGiven`; one it holds
    /// gets the new file when `file` differs (placement kept) and the target when `targetGiven`.
    /// Two commands (a replace, then a target) let readers see the new file with the old target,
    /// and a write that lost its leader between them apply half (Contrib/chaos found both).
    case putUnit(UnitSubmission, targetGiven: Bool)
    /// Removes units or templates (and their placements); instances of a destroyed template stay.
    case destroyUnits([UnitName])
    /// Places units; a unit already placed elsewhere moves. Global units and templates cannot be
    /// assigned, and nothing can be assigned to a drained machine.
    case assign([Assignment])
    case unassign([UnitName])
    /// Replaces a machine's whole metadata (sorted and de-duplicated on apply).
    case setMachineMetadata(MachineID, [MetadataEntry])
    /// A drained machine receives no new units and the scheduler moves its units away.
    case drainMachine(MachineID)
    case undrainMachine(MachineID)
    /// Ends the machine's lease at `epoch` (the leader saw a majority of the voters withhold it,
    /// or the machine released it on shutdown): the machine's epoch becomes `epoch + 1` and every
    /// unit placed on it is unplaced, in one step, so that any replica's schedule of the new epoch
    /// holds none of them. Rejected unless the machine is at `epoch`: a revocation decided on
    /// an older epoch never touches a newer lease.
    case revokeLease(MachineID, epoch: UInt64)
    /// Moves the machine's lease from `epoch` to `epoch + 1` and keeps its units: the leader
    /// clears the withholds of voters that were cut off while the machine kept renewing. Rejected
    /// unless the machine is at `epoch`, like `revokeLease`, so of a revocation and an advance of
    /// the same epoch only the first in the log applies.
    case advanceLease(MachineID, epoch: UInt64)
    /// Replaces the cluster's gossip keyring: 1 to `GossipKeyringRecord.keysMax` distinct keys
    /// of `GossipKeyringRecord.keyBytes` bytes, the primary (the one that encrypts) first. Every
    /// machine installs it from its schedule (`flotillactl keyring install/use/remove`); the
    /// leader computes the whole ring from the current one, so each command is absolute.
    case setGossipKeyring([[UInt8]])
    /// Stores an ACL token. `bootstrap` (the first, management token) is rejected once any token
    /// exists, so of two racing bootstraps only the first in the log applies.
    case createACLToken(ACLTokenRecord, bootstrap: Bool)
    case deleteACLToken(accessorID: String)
    /// Raises or clears the NOSPACE alarm of a voter whose data directory has less free space
    /// than its reserve (etcd's alarm). The leader proposes it from the voters' reports; while
    /// any is raised the API refuses the writes that add data (`RegistryState.noSpaceAlarms`).
    case setNoSpaceAlarm(MachineID, raised: Bool)
}

/// The answer to one applied command. A retried stamped command gets the answer it got the
/// first time, from the session table, without applying again.
public enum RegistryResult: Hashable, Sendable {
    /// Applied; `changedCount` counts the units, templates or machines whose record changed
    /// (0: the command was a no-op, e.g. resubmitting an identical unit).
    case applied(changedCount: Int)
    case rejected(RegistryRejection)
}

/// Why a command changed nothing. Every payload is a plain string or number so that the result
/// can be stored in the session table and its snapshot.
public enum RegistryRejection: Error, Hashable, Sendable, CustomStringConvertible {
    /// The index was not after the last applied one (a replay the caller should have skipped).
    case indexNotAfterVersion(index: UInt64, version: UInt64)
    /// A stamped command older than the client's last one: its answer is no longer kept.
    case staleSequence(clientID: UInt64, sequence: UInt64, lastSequence: UInt64)
    case emptyBatch
    case batchTooLarge(count: Int, limit: Int)
    case tooManyUnits(limit: Int)
    case duplicateInBatch(String)
    case unitNotFound(String)
    case unitExists(String, existingHash: String)
    case templateNotFound(String)
    case unitFileMissing(String)
    case unitFileTooLarge(String, sizeBytes: Int, limitBytes: Int)
    case unitFileNotCanonical(String)
    case hashMismatch(String)
    case invalidUnitFile(String, reason: String)
    case invalidFleetOptions(String, reason: String)
    case notSchedulable(String)
    case templateCannotBeLaunched(String)
    case globalUnitCannotBeAssigned(String)
    case machineDrained(String)
    case invalidMachineID(String)
    case invalidMetadata(key: String, value: String)
    case tooManyMetadataEntries(count: Int, limit: Int)
    case tooManyMachines(limit: Int)
    case staleLeaseEpoch(machine: String, epoch: UInt64, currentEpoch: UInt64)
    case invalidGossipKeyring(String)
    case aclAlreadyBootstrapped
    case aclTokenNotFound(String)
    case invalidACLToken(String)
    case tooManyACLTokens(limit: Int)

    public var description: String {
        switch self {
        case .indexNotAfterVersion(let index, let version): return "index \(index) is not after version \(version)"
        case .staleSequence(let client, let sequence, let last):
            return "client \(client) sent sequence \(sequence), older than its last \(last)"
        case .emptyBatch: return "empty batch"
        case .batchTooLarge(let count, let limit): return "batch of \(count) exceeds the limit of \(limit)"
        case .tooManyUnits(let limit): return "the registry holds its limit of \(limit) units"
        case .duplicateInBatch(let name): return "\(name) appears twice in one batch"
        case .unitNotFound(let name): return "no unit \(name)"
        case .unitExists(let name, let hash): return "\(name) exists with another file (hash \(hash))"
        case .templateNotFound(let name): return "no template for \(name) and no file given"
        case .unitFileMissing(let name): return "no file given for \(name)"
        case .unitFileTooLarge(let name, let size, let limit): return "file of \(name) is \(size) bytes, limit \(limit)"
        case .unitFileNotCanonical(let name): return "file of \(name) is not in canonical form"
        case .hashMismatch(let name): return "hash given for \(name) is not the hash of its file"
        case .invalidUnitFile(let name, let reason): return "file of \(name) is invalid: \(reason)"
        case .invalidFleetOptions(let name, let reason): return "[X-Fleet] of \(name) is invalid: \(reason)"
        case .notSchedulable(let name): return "\(name) is not a unit type fleet schedules"
        case .templateCannotBeLaunched(let name): return "template \(name) can only be inactive"
        case .globalUnitCannotBeAssigned(let name): return "\(name) is global: it runs on every matching machine"
        case .machineDrained(let machine): return "machine \(machine) is drained"
        case .invalidMachineID(let machine): return "invalid machine id \(machine)"
        case .invalidMetadata(let key, let value): return "invalid metadata \(key)=\(value)"
        case .tooManyMetadataEntries(let count, let limit): return "\(count) metadata entries, limit \(limit)"
        case .tooManyMachines(let limit): return "the registry holds its limit of \(limit) machines"
        case .staleLeaseEpoch(let machine, let epoch, let current):
            return "the lease of \(machine) is at epoch \(current), not \(epoch)"
        case .invalidGossipKeyring(let reason): return "invalid gossip keyring: \(reason)"
        case .aclAlreadyBootstrapped: return "ACLs are already bootstrapped: a management token exists"
        case .aclTokenNotFound(let accessor): return "no ACL token \(accessor)"
        case .invalidACLToken(let reason): return "invalid ACL token: it needs \(reason)"
        case .tooManyACLTokens(let limit): return "the registry holds its limit of \(limit) ACL tokens"
        }
    }
}

/// Bounds of the registry, the same on every replica (part of the cluster's configuration).
public struct RegistryLimits: Hashable, Sendable {
    public var unitsMax: Int
    public var machinesMax: Int
    /// Elements in one batch command.
    public var batchCountMax: Int
    /// Clients whose last answer is remembered; past it the client with the oldest last command
    /// is forgotten (deterministically, by log index), and a late retry from it applies again.
    public var clientSessionsMax: Int
    public var unitFileSizeMax: Int
    public var metadataEntriesMax: Int
    public var metadataLengthMax: Int

    public static let standard = RegistryLimits(
        unitsMax: 1_000_000, machinesMax: 100_000, batchCountMax: 8_192, clientSessionsMax: 4_096,
        unitFileSizeMax: 256 * 1024, metadataEntriesMax: 64, metadataLengthMax: 255)

    public init(unitsMax: Int, machinesMax: Int, batchCountMax: Int, clientSessionsMax: Int,
                unitFileSizeMax: Int, metadataEntriesMax: Int, metadataLengthMax: Int) {
        precondition(unitsMax > 0 && machinesMax > 0 && batchCountMax > 0 && clientSessionsMax > 0,
                     "registry limits must be positive")
        precondition(unitFileSizeMax > 0 && unitFileSizeMax <= UnitFile.unitFileSizeMax,
                     "unitFileSizeMax \(unitFileSizeMax) must be in 1...\(UnitFile.unitFileSizeMax)")
        precondition(metadataEntriesMax > 0 && metadataLengthMax > 0, "metadata limits must be positive")
        // The snapshot writes unit, machine and session counts as UInt32 and metadata counts as
        // UInt16: limits beyond those would make a valid state unencodable.
        precondition(unitsMax <= Int(UInt32.max) && machinesMax <= Int(UInt32.max) && clientSessionsMax <= Int(UInt32.max),
                     "registry count limits must fit in 32 bits")
        precondition(metadataEntriesMax <= Int(UInt16.max), "metadataEntriesMax must fit in 16 bits, got \(metadataEntriesMax)")
        self.unitsMax = unitsMax
        self.machinesMax = machinesMax
        self.batchCountMax = batchCountMax
        self.clientSessionsMax = clientSessionsMax
        self.unitFileSizeMax = unitFileSizeMax
        self.metadataEntriesMax = metadataEntriesMax
        self.metadataLengthMax = metadataLengthMax
    }
}
