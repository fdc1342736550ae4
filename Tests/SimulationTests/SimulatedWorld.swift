import Raft

// The pieces of the simulated world: a disk per node that keeps only synced writes, a state
// machine with client de-duplication, and a network that delays, drops, duplicates, reorders
// and partitions. Everything is driven from one seeded `SplitMix64`, in one thread.

extension SplitMix64 {
    mutating func chance(_ probability: Double) -> Bool {
        probability > 0 && Double(next() >> 11) / Double(1 << 53) < probability
    }

    mutating func below(_ bound: Int) -> Int {
        precondition(bound > 0, "below(\(bound))")
        return Int(next() % UInt64(bound))
    }

    mutating func inRange(_ range: ClosedRange<Int>) -> Int {
        range.lowerBound + below(range.count)
    }

    mutating func pick<T>(_ values: [T]) -> T? {
        values.isEmpty ? nil : values[below(values.count)]
    }
}

/// The disk of one node, as the real `WriteAheadLog` (module Storage) would present it after a
/// crash.
///
/// The WAL syncs every batch that carries a snapshot, entries, or a new term or vote, and the
/// shell acts on such a batch only after its sync returned. A batch that only raises the commit
/// index is written WITHOUT a sync (`WriteAheadLog.needsSync`), and the shell acts on it at once:
/// it applies the newly committed entries and answers clients. Such records become durable with
/// the next synced batch (one fdatasync covers the whole file); until then a crash may leave them
/// torn, and recovery cuts a torn tail. `unsyncedCommitIndexes` remembers them for
/// `Simulation.tearTail`; a plain crash keeps them (the kernel wrote them back in time).
struct SimulatedDisk {
    var hardState = HardState()
    var snapshot: Snapshot
    /// Entries after `snapshot.metadata.index`.
    var entries: [Entry] = []
    /// The commit indexes of the commit-only hard-state records written since the last sync,
    /// oldest first; the last one is `hardState.commitIndex`.
    private(set) var unsyncedCommitIndexes: [UInt64] = []
    /// The commit index of the last hard state a sync made durable.
    private(set) var syncedCommitIndex: UInt64

    init(initial: PersistentState) {
        hardState = initial.hardState
        snapshot = initial.snapshot
        entries = initial.entries
        syncedCommitIndex = initial.hardState.commitIndex
    }

    var persistentState: PersistentState {
        PersistentState(hardState: hardState, snapshot: snapshot, entries: entries)
    }

    /// Step 1 of the `Ready` contract, written once its sync completed (the caller models the
    /// sync delay); a commit-only batch is written without a sync, as the WAL does.
    mutating func persist(_ ready: Ready) {
        // Nothing to write: the WAL neither writes nor syncs (`WriteBatch.isEmpty`).
        guard ready.snapshot != nil || !ready.entries.isEmpty || ready.hardState != nil else { return }
        if let received = ready.snapshot {
            snapshot = received
            entries = []
        }
        if let first = ready.entries.first {
            let keep = Int(first.index - snapshot.metadata.index - 1)
            precondition(keep >= 0 && keep <= entries.count,
                         "Ready entries start at \(first.index), disk holds (\(snapshot.metadata.index), \(snapshot.metadata.index + UInt64(entries.count))]")
            entries.removeLast(entries.count - keep)
            entries.append(contentsOf: ready.entries)
        }
        let synced = Self.needsSync(ready, over: hardState)
        if let state = ready.hardState { hardState = state }
        if synced {
            unsyncedCommitIndexes = []
            syncedCommitIndex = hardState.commitIndex
        } else if let state = ready.hardState {
            // Bounded: the kernel writes dirty pages back within seconds by itself, so records
            // this far behind the newest are taken as on disk, and a tear never reaches them.
            if unsyncedCommitIndexes.count == Self.unsyncedRecordsMax {
                syncedCommitIndex = unsyncedCommitIndexes.removeFirst()
            }
            unsyncedCommitIndexes.append(state.commitIndex)
        }
    }

    static let unsyncedRecordsMax = 64

    /// The rule of `WriteAheadLog.needsSync`: only a batch that changes nothing but the commit
    /// index is written without a sync.
    static func needsSync(_ ready: Ready, over durable: HardState) -> Bool {
        guard ready.snapshot == nil, ready.entries.isEmpty, let state = ready.hardState else { return true }
        return state.term != durable.term || state.votedFor != durable.votedFor
    }

    /// What recovery finds when a crash tore the tail after the first `kept` unsynced records:
    /// the later ones are cut, and the commit index falls back to the last one kept.
    mutating func cutUnsyncedRecords(keeping kept: Int) {
        precondition(kept >= 0 && kept <= unsyncedCommitIndexes.count,
                     "keeping \(kept) of \(unsyncedCommitIndexes.count) unsynced records")
        unsyncedCommitIndexes.removeLast(unsyncedCommitIndexes.count - kept)
        hardState.commitIndex = unsyncedCommitIndexes.last ?? syncedCommitIndex
    }

    /// The application's own snapshot: written and synced, then the covered entries are dropped.
    mutating func compact(to newSnapshot: Snapshot) {
        let drop = Int(newSnapshot.metadata.index - snapshot.metadata.index)
        precondition(drop <= entries.count, "compaction beyond the persisted log")
        entries.removeFirst(drop)
        snapshot = newSnapshot
        // The WAL syncs the snapshot marker, and that sync covers every record before it.
        unsyncedCommitIndexes = []
        syncedCommitIndex = hardState.commitIndex
    }
}

/// The replicated state machine of the simulation: the list of client commands applied, after
/// de-duplication by `ClientSessionTable`. Its encoding is the snapshot data.
struct SimulatedStateMachine {
    static let clientsMax = 64
    var appliedIndex: UInt64
    var sessions = ClientSessionTable(clientsMax: SimulatedStateMachine.clientsMax)
    var applied: [ClientStamp] = []
    var appliedSet: Set<ClientStamp> = []

    init(snapshot: Snapshot) {
        appliedIndex = snapshot.metadata.index
        var words = Self.words(snapshot.data)[...]
        guard let sessionCount = words.popFirst() else { return }
        var restored: [ClientSessionTable.Session] = []
        for _ in 0..<sessionCount {
            restored.append(.init(clientID: words.popFirst()!, lastSequence: words.popFirst()!, lastIndex: words.popFirst()!))
        }
        sessions = ClientSessionTable(sessions: restored, clientsMax: Self.clientsMax)
        while let clientID = words.popFirst() {
            let stamp = ClientStamp(clientID: clientID, sequence: words.popFirst()!)
            applied.append(stamp)
            appliedSet.insert(stamp)
        }
    }

    var encoded: [UInt8] {
        var words: [UInt64] = [UInt64(sessions.count)]
        for session in sessions.sessions {
            words += [session.clientID, session.lastSequence, session.lastIndex]
        }
        for stamp in applied { words += [stamp.clientID, stamp.sequence] }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(words.count * 8)
        for word in words {
            var remaining = word
            for _ in 0..<8 {
                bytes.append(UInt8(truncatingIfNeeded: remaining))
                remaining >>= 8
            }
        }
        return bytes
    }

    static func words(_ bytes: [UInt8]) -> [UInt64] {
        precondition(bytes.count % 8 == 0, "snapshot data of \(bytes.count) bytes")
        return stride(from: 0, to: bytes.count, by: 8).map { start in
            (0..<8).reduce(UInt64(0)) { $0 | UInt64(bytes[start + $1]) << UInt64($1 * 8) }
        }
    }

    /// Applies one committed entry; returns the stamp if a client command took effect.
    mutating func apply(_ entry: Entry) -> ClientStamp? {
        precondition(entry.index == appliedIndex + 1, "applying \(entry.index) after \(appliedIndex)")
        appliedIndex = entry.index
        guard case .command(_, let stamp?) = entry.payload, sessions.admit(stamp, at: entry.index) else { return nil }
        applied.append(stamp)
        let inserted = appliedSet.insert(stamp).inserted
        precondition(inserted, "stamp \(stamp) applied twice although admitted once")
        return stamp
    }
}

/// A network of point-to-point links. Each link is FIFO, like the TCP connection the real
/// transport uses, except for "long delay" messages, which overtake nothing but are overtaken by
/// everything sent after them (a message stuck in a dying connection, then replayed): that is
/// where reordering comes from. Drops and duplicates apply per message.
///
/// Reordering every message independently was tried first: pipelined AppendEntries then arrive
/// out of order, each early one is rejected and drops the follower back to probing, and a learner
/// needed ~380 ticks to copy 350 entries. etcd raft behaves the same; it expects FIFO links.
struct SimulatedNetwork {
    var dropProbability = 0.0
    var duplicateProbability = 0.0
    var longDelayProbability = 0.0
    var delayMoments: ClosedRange<Int> = 1...6
    var longDelayMoments: ClosedRange<Int> = 10...60
    /// Directed links that currently lose everything: blocked[from][to].
    var blocked: Set<Link> = []
    private(set) var inFlightByMoment: [Int: [Message]] = [:]
    private var lastDeliveryByLink: [Link: Int] = [:]
    private(set) var inFlightCount = 0

    struct Link: Hashable {
        var from: NodeID
        var to: NodeID
    }

    mutating func send(_ message: Message, now: Int, random: inout SplitMix64) {
        if random.chance(dropProbability) { return }
        let copies = random.chance(duplicateProbability) ? 2 : 1
        let link = Link(from: message.from, to: message.to)
        for _ in 0..<copies {
            let deliverAt: Int
            if random.chance(longDelayProbability) {
                deliverAt = now + random.inRange(longDelayMoments)
            } else {
                deliverAt = max(now + random.inRange(delayMoments), lastDeliveryByLink[link] ?? 0)
                lastDeliveryByLink[link] = deliverAt
            }
            inFlightByMoment[deliverAt, default: []].append(message)
            inFlightCount += 1
        }
    }

    /// Messages due now, minus those on blocked links (a partition also eats messages in flight).
    mutating func takeDue(now: Int) -> [Message] {
        guard let due = inFlightByMoment.removeValue(forKey: now) else { return [] }
        inFlightCount -= due.count
        return due.filter { !blocked.contains(Link(from: $0.from, to: $0.to)) }
    }
}
