import NIOCore
import Raft
import Storage
import Transport

/// Tunables of one `RaftReplica`. Relations are checked by `init`.
public struct ReplicaConfiguration: Sendable {
    public let id: NodeID
    /// The founding voters, used only when `dataDirectory` holds no log yet
    /// (`PersistentState.bootstrap(voters:)`); a restarted replica recovers its membership from disk.
    /// Empty for a replica that joins an existing cluster (`PersistentState.joining()`): it starts
    /// with no log and no members, and waits for a leader to add it (`RaftReplica.addLearner`)
    /// and send it everything, a snapshot or the log from entry 1.
    public let foundingVoters: [NodeID]
    public let dataDirectory: String
    public let raft: RaftConfiguration
    public let writeAheadLog: WriteAheadLogConfiguration
    /// The wall-clock length of one Raft tick. Election timeouts are `raft.electionTimeoutTicks`
    /// of these (randomised up to twice that by the core).
    public let tickInterval: TimeAmount
    /// Messages from peers waiting for the Raft loop. When full, the newest is dropped and counted:
    /// Raft tolerates loss, and a loop this far behind is better served by shedding than queueing.
    public let inboxMessagesMax: Int
    /// Client proposals waiting for the loop or for their entry to be applied. Past this, new
    /// proposals fail at once with `ProposalError.overloaded`.
    public let pendingProposalsMax: Int
    /// Ready batches handled in one turn of the loop before yielding to other work (ticks, IO).
    public let readyBatchesPerTurnMax: Int
    /// Seeds the core's randomised election timeouts.
    public let randomSeed: UInt64
    /// Once this many entries were applied after the last snapshot, the replica asks the state
    /// machine for a snapshot (`StateMachine.snapshot`), makes it durable and compacts the log
    /// behind it, memory and disk (Raft §7). That bounds the log a replica keeps and replays, at
    /// the price of one snapshot (a full copy of the state, taken on the Raft loop) per this many
    /// entries. nil: never, and the log grows without bound; give it a value in production.
    public let snapshotEveryEntries: Int?

    public init(
        id: NodeID,
        foundingVoters: [NodeID],
        dataDirectory: String,
        raft: RaftConfiguration,
        writeAheadLog: WriteAheadLogConfiguration = WriteAheadLogConfiguration(),
        tickInterval: TimeAmount = .milliseconds(10),
        inboxMessagesMax: Int = 16 * 1024,
        pendingProposalsMax: Int = 16 * 1024,
        readyBatchesPerTurnMax: Int = 4,
        randomSeed: UInt64,
        snapshotEveryEntries: Int? = nil
    ) throws(ReplicaError) {
        guard foundingVoters.isEmpty || foundingVoters.contains(id) else {
            throw .invalidConfiguration("founding voters \(foundingVoters) do not include this replica \(id)")
        }
        guard Set(foundingVoters).count == foundingVoters.count else {
            throw .invalidConfiguration("duplicate founding voter in \(foundingVoters)")
        }
        guard tickInterval.nanoseconds > 0 else { throw .invalidConfiguration("tickInterval must be positive") }
        for (name, value) in [("inboxMessagesMax", inboxMessagesMax), ("pendingProposalsMax", pendingProposalsMax),
                              ("readyBatchesPerTurnMax", readyBatchesPerTurnMax)] where value <= 0 {
            throw .invalidConfiguration("\(name) must be positive, is \(value)")
        }
        // A record must hold the largest entry the core accepts, or an accepted proposal could
        // never be made durable.
        guard writeAheadLog.recordBytesMax > raft.entryBytesMax + 1024 else {
            throw .invalidConfiguration(
                "writeAheadLog.recordBytesMax \(writeAheadLog.recordBytesMax) must exceed raft.entryBytesMax \(raft.entryBytesMax) plus overhead")
        }
        if let snapshotEveryEntries, snapshotEveryEntries <= 0 {
            throw .invalidConfiguration("snapshotEveryEntries must be positive, is \(snapshotEveryEntries)")
        }
        // A snapshot the core accepts from a leader must fit the log's snapshot file, or
        // installing it would fail the log and stop the replica.
        guard writeAheadLog.snapshotBytesMax >= raft.snapshotBytesMax else {
            throw .invalidConfiguration(
                "writeAheadLog.snapshotBytesMax \(writeAheadLog.snapshotBytesMax) is below raft.snapshotBytesMax \(raft.snapshotBytesMax)")
        }
        // One Ready is one WAL batch, never split across segments. Its entries are bounded by the
        // leader's uncommitted bytes plus one in-flight window from a leader, and their encoding
        // is at most twice their `Entry.sizeBytes`; a batch larger than a segment would fail the
        // log (`StorageError.batchTooLarge`).
        let readyEntriesBytesMax = 2 * (raft.uncommittedEntriesBytesMax + raft.inflightBytesMax) + writeAheadLog.recordBytesMax
        guard writeAheadLog.segmentBytesMax >= readyEntriesBytesMax else {
            throw .invalidConfiguration(
                "writeAheadLog.segmentBytesMax \(writeAheadLog.segmentBytesMax) must be at least \(readyEntriesBytesMax): twice raft.uncommittedEntriesBytesMax plus raft.inflightBytesMax, plus one record")
        }
        self.id = id
        self.foundingVoters = foundingVoters
        self.dataDirectory = dataDirectory
        self.raft = raft
        self.writeAheadLog = writeAheadLog
        self.tickInterval = tickInterval
        self.inboxMessagesMax = inboxMessagesMax
        self.pendingProposalsMax = pendingProposalsMax
        self.readyBatchesPerTurnMax = readyBatchesPerTurnMax
        self.randomSeed = randomSeed
        self.snapshotEveryEntries = snapshotEveryEntries
    }
}

public enum ReplicaError: Error, Equatable, Sendable {
    case invalidConfiguration(String)
    case storage(StorageError)
    /// The recovered state does not satisfy the core (a bug or a foreign directory).
    case unusableState(String)
    /// The state machine refused the recovered snapshot (`StateMachine.restore` threw).
    case snapshotNotRestored(index: UInt64, reason: String)
    case transport(TransportError)
    case stopped
}

extension ReplicaError: CustomStringConvertible {
    public var description: String {
        switch self {
        case .invalidConfiguration(let reason): "invalid replica configuration: \(reason)"
        case .storage(let error): "the write-ahead log: \(error)"
        case .unusableState(let reason): "the recovered Raft state is unusable: \(reason)"
        case .snapshotNotRestored(let index, let reason): "the snapshot at index \(index) does not restore: \(reason)"
        case .transport(let error): "the Raft transport: \(error)"
        case .stopped: "the replica is stopped"
        }
    }
}

/// Why a running replica stopped taking part. It never recovers from either by itself: the log
/// refuses further use after a failed write (`StorageError.unusableAfterFailure`), and a state
/// machine that cannot take a snapshot no longer matches the log it applies. The process should
/// stop and let its supervisor and the other voters act (`RaftReplica.failures`).
public enum ReplicaFailure: Error, Equatable, Sendable, CustomStringConvertible {
    /// A write, sync or compaction of the write-ahead log failed.
    case storage(StorageError)
    /// A snapshot received from the leader did not restore.
    case snapshotNotRestored(index: UInt64, reason: String)

    public var description: String {
        switch self {
        case .storage(let error): "the write-ahead log failed: \(error)"
        case .snapshotNotRestored(let index, let reason): "the snapshot at index \(index) does not restore: \(reason)"
        }
    }
}

/// Why a leadership transfer did not complete (thesis §3.10).
public enum LeadershipTransferError: Error, Equatable, Sendable {
    /// This replica is not the leader; `leaderID` is the one it knows of, if any.
    case notLeader(leaderID: NodeID?)
    /// Refused by the core: the target is not a voter (learners cannot lead).
    case dropped(DropReason)
    /// The leader gave up after one election timeout (the target did not catch up or did not
    /// win), and resumed leading.
    case aborted
    /// Another server than the target became leader.
    case anotherLeaderElected(NodeID)
    /// No leader was known for `transferWaitTicksMax` ticks after the transfer began.
    case noLeaderElected
    /// Another transfer started on this replica is still under way.
    case transferInProgress(target: NodeID)
    case stopped
}

/// Why a proposal was not applied. A client may retry `notLeader` at the leader named, and
/// `superseded`, `overloaded` or `stopped` anywhere, with the same `ClientStamp` so that the
/// state machine can drop duplicates (thesis §6.3).
public enum ProposalError: Error, Equatable, Sendable {
    /// This replica is not the leader; `leaderID` is the one it knows of, if any.
    case notLeader(leaderID: NodeID?)
    case dropped(DropReason)
    /// The entry appended for the proposal was replaced by another leader's entry at that index
    /// (§5.3, §8): it will never be applied.
    case superseded(index: UInt64, term: UInt64)
    case overloaded(pendingProposalsMax: Int)
    /// A read barrier whose leadership no majority confirmed within two election timeouts (the
    /// leader was cut off, or lost its role): retry, at the leader the cluster has by then.
    case readNotConfirmed
    /// The replica stopped, or its storage failed, before the entry was applied. It may still be
    /// committed by the others: only a retry with the same stamp is safe.
    case stopped
}

/// A proposal that was committed and applied on this replica.
public struct AppliedProposal: Equatable, Sendable {
    public var index: UInt64
    public var term: UInt64
    /// What the state machine returned for the entry.
    public var result: [UInt8]

    public init(index: UInt64, term: UInt64, result: [UInt8]) {
        self.index = index
        self.term = term
        self.result = result
    }
}

/// A consistent view of the replica, taken on its loop.
public struct ReplicaStatus: Equatable, Sendable {
    public var id: NodeID
    public var role: Role
    public var term: UInt64
    public var leaderID: NodeID?
    public var commitIndex: UInt64
    public var appliedIndex: UInt64
    public var lastIndex: UInt64
    public var pendingProposals: Int
    public var inboxMessagesDropped: Int
    public var storageSyncs: Int
    /// Set once the write-ahead log failed or a snapshot did not restore: the replica has stopped
    /// taking part.
    public var failure: ReplicaFailure?
    /// The membership in force (the latest in the log, committed or not: thesis §4.1).
    public var membership: Membership
    /// The index through which the log is compacted (0 before the first snapshot).
    public var snapshotIndex: UInt64
    /// Snapshots this replica took of its own state machine since it started.
    public var snapshotsTaken: Int
    /// Snapshots received from a leader (InstallSnapshot) and restored since it started.
    public var snapshotsInstalled: Int
    /// Messages the core refused as malformed (forged or corrupt values; `RaftNode.isWellFormed`).
    public var malformedMessagesDropped: UInt64 = 0
}

/// The application's side of the replica. The closures run on the replica's loop, one at a
/// time, in log order; they must not block for long (the loop also ticks and persists).
public struct StateMachine {
    /// Applies one committed entry (commands, and also the core's no-op and membership entries,
    /// which most state machines ignore) and returns the answer for its proposer.
    public var apply: (Entry) -> [UInt8]
    /// Replaces the whole state with a snapshot's (received from a leader, or recovered at start).
    /// Throws when the bytes do not decode; the state must then be left as it was. The replica
    /// stops (`ReplicaFailure.snapshotNotRestored`, or at start `ReplicaError.snapshotNotRestored`):
    /// going on would apply later entries to a state that misses the snapshot's.
    public var restore: (Snapshot) throws -> Void
    /// Encodes the whole state as of the last entry `apply` was given, such that `restore` of
    /// those bytes rebuilds it (Raft §7). nil for a state machine that cannot: the replica then
    /// never compacts its log, and `ReplicaConfiguration.snapshotEveryEntries` must be nil.
    public var snapshot: (() -> [UInt8])?

    public init(apply: @escaping (Entry) -> [UInt8], restore: @escaping (Snapshot) throws -> Void,
                snapshot: (() -> [UInt8])? = nil) {
        self.apply = apply
        self.restore = restore
        self.snapshot = snapshot
    }
}
