import Raft

/// What one `WriteAheadLog.append` makes durable, with one sync: the persistence half of a Raft
/// `Ready`. Applied in the order Ready prescribes: `snapshot` (replacing the whole stored log),
/// then `entries` (cutting the stored log at `entries.first.index` first), then `hardState`.
public struct WriteBatch: Equatable, Sendable {
    public var snapshot: Snapshot?
    public var entries: [Entry]
    public var hardState: HardState?

    public init(snapshot: Snapshot? = nil, entries: [Entry] = [], hardState: HardState? = nil) {
        self.snapshot = snapshot
        self.entries = entries
        self.hardState = hardState
    }

    /// The part of `ready` that must be durable before its messages are sent.
    public init(_ ready: Ready) {
        self.init(snapshot: ready.snapshot, entries: ready.entries, hardState: ready.hardState)
    }

    public var isEmpty: Bool { snapshot == nil && entries.isEmpty && hardState == nil }
}
