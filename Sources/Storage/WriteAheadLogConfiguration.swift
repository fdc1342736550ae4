/// Bounds of the write-ahead log. Defaults fit the Raft core's defaults: a Ready batch is bounded
/// by `uncommittedEntriesBytesMax` (8 MiB) on a leader and by the in-flight window (1 MiB) on a
/// follower, well below one segment.
public struct WriteAheadLogConfiguration: Equatable, Sendable {
    /// A segment is rolled over before a batch that would take it beyond this size.
    public var segmentBytesMax: Int
    /// The largest record (one hard state, a run of entries, ...). An entry larger than this minus
    /// the record overhead cannot be stored; keep it above Raft's `entryBytesMax`.
    public var recordBytesMax: Int
    /// The largest snapshot file read back or written.
    public var snapshotBytesMax: Int

    public init(
        segmentBytesMax: Int = 64 * 1024 * 1024,
        recordBytesMax: Int = 4 * 1024 * 1024,
        snapshotBytesMax: Int = 1024 * 1024 * 1024
    ) {
        precondition(recordBytesMax >= 1024, "recordBytesMax \(recordBytesMax) is below 1 KiB")
        precondition(recordBytesMax <= Int(UInt32.max), "recordBytesMax \(recordBytesMax) exceeds the 32-bit length")
        // The segment header and its two records (hard state, snapshot marker) plus one full
        // record must fit, or a batch might never find room.
        precondition(segmentBytesMax >= 2 * recordBytesMax,
                     "segmentBytesMax \(segmentBytesMax) must be at least twice recordBytesMax \(recordBytesMax)")
        precondition(snapshotBytesMax > 0, "snapshotBytesMax must be positive")
        self.segmentBytesMax = segmentBytesMax
        self.recordBytesMax = recordBytesMax
        self.snapshotBytesMax = snapshotBytesMax
    }
}
