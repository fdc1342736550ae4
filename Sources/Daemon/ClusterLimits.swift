import HTTPAPI
import Raft
import Registry
import RaftReplica
import Scheduling
import Storage
import UnitFile
import Wire

/// Every byte bound on the path of a write, derived here from the one that users meet (the size
/// of a unit file), so that none of them can refuse what another let through.
///
/// The path of a unit file: an HTTP body (fleet's JSON of its options) → a registry command → a
/// Raft entry → a write-ahead-log record on every voter → an AppendEntries frame to each
/// follower. Each step must hold the largest thing the step before it accepts. When a later limit
/// was smaller, a peer could send what a follower's log then refused to write (a 3 MiB entry fit
/// a 4 MiB frame but not a 2 MiB record, and the replica stopped); and the scheduler made
/// assignment batches that Raft refused as too large, every round.
///
/// `DaemonTests/ClusterLimitsTests` checks the relations with the real encoders.
struct ClusterLimits: Sendable {
    /// The largest unit file the registry stores (the one limit chosen; the rest follow).
    let unitFileBytesMax: Int
    /// The largest command in one Raft entry: one unit file and its name, stamp and framing, four
    /// times over, so a submission is never near the edge.
    let entryBytesMax: Int
    /// Entry bytes in one AppendEntries (two maximal entries).
    let appendEntriesBatchBytesMax: Int
    /// Unacknowledged entry bytes per follower.
    let inflightBytesMax: Int
    /// Uncommitted entry bytes a leader holds before it refuses proposals.
    let uncommittedEntriesBytesMax: Int
    /// Committed entry bytes handed to the registry at once.
    let committedEntriesBatchBytesMax: Int
    /// The largest WAL record: one entry, encoded, with room for its header.
    let walRecordBytesMax: Int
    /// The largest Raft transport frame body. An entry costs a few bytes more on the wire than
    /// Raft's size estimate (`Entry.overheadBytes`) when it carries a stamp, so a batch of many
    /// small entries is larger encoded than counted: twice the batch holds any batch.
    let transportFrameBytesMax: Int
    /// Snapshot chunk size; a chunk plus its header fits a frame.
    let snapshotChunkBytesMax: Int
    /// Elements in one assign or unassign command, so that the largest such command (names of
    /// `UnitName.lengthMax` bytes on machines of `MachineID.lengthMax`) fits one entry.
    let schedulerBatchCountMax: Int
    /// An HTTP request body: fleet's JSON of a unit file repeats the section name in every option
    /// and escapes `<`, `>` and `&` as six bytes, so a file of short lines grows up to about
    /// fifteen times as JSON (sections of up to 16 bytes, like `Service` or `X-Fleet`).
    let httpRequestBodyBytesMax: Int

    /// The bytes of an assign command element (a length-prefixed unit name and machine id) at most.
    static let assignmentElementBytesMax = 4 + UnitName.lengthMax + 4 + MachineID.lengthMax
    /// Magic, format, a stamp, the operation tag and the element count of a registry command.
    static let commandHeaderBytesMax = 4 + 2 + 1 + 16 + 1 + 4

    static let standard = ClusterLimits(unitFileBytesMax: RegistryLimits.standard.unitFileSizeMax)

    init(unitFileBytesMax: Int) {
        precondition(unitFileBytesMax >= 4096, "unitFileBytesMax must be at least 4 KiB, got \(unitFileBytesMax)")
        self.unitFileBytesMax = unitFileBytesMax
        entryBytesMax = 4 * unitFileBytesMax
        appendEntriesBatchBytesMax = 2 * entryBytesMax
        inflightBytesMax = 8 * entryBytesMax
        uncommittedEntriesBytesMax = 16 * entryBytesMax
        committedEntriesBatchBytesMax = 4 * entryBytesMax
        walRecordBytesMax = 2 * entryBytesMax
        transportFrameBytesMax = 2 * appendEntriesBatchBytesMax
        snapshotChunkBytesMax = unitFileBytesMax
        schedulerBatchCountMax = min(RegistryLimits.standard.batchCountMax,
                                     (entryBytesMax - Self.commandHeaderBytesMax) / Self.assignmentElementBytesMax)
        httpRequestBodyBytesMax = 16 * unitFileBytesMax
    }

    func raftConfiguration(electionTimeoutTicks: Int) throws(RaftConfigurationError) -> RaftConfiguration {
        try RaftConfiguration(electionTimeoutTicks: electionTimeoutTicks, heartbeatIntervalTicks: 1,
                              appendEntriesBatchBytesMax: appendEntriesBatchBytesMax, inflightBytesMax: inflightBytesMax,
                              uncommittedEntriesBytesMax: uncommittedEntriesBytesMax, entryBytesMax: entryBytesMax,
                              committedEntriesBatchBytesMax: committedEntriesBatchBytesMax,
                              snapshotChunkBytesMax: snapshotChunkBytesMax)
    }

    var writeAheadLog: WriteAheadLogConfiguration { WriteAheadLogConfiguration(recordBytesMax: walRecordBytesMax) }

    var scheduler: SchedulerConfiguration {
        SchedulerConfiguration(batchCountMax: schedulerBatchCountMax,
                               placementRoundsMax: SchedulerConfiguration.standard.placementRoundsMax)
    }
}
