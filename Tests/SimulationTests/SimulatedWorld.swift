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

/// What survives a crash: exactly the writes of every `Ready` whose sync completed.
struct SimulatedDisk {
    var hardState = HardState()
    var snapshot: Snapshot
    /// Entries after `snapshot.metadata.index`.
    var entries: [Entry] = []

    init(initial: PersistentState) {
        hardState = initial.hardState
        snapshot = initial.snapshot
        entries = initial.entries
    }

    var persistentState: PersistentState {
        PersistentState(hardState: hardState, snapshot: snapshot, entries: entries)
    }

    /// Step 1 of the `Ready` contract, made durable at once (the caller models the sync delay).
    mutating func persist(_ ready: Ready) {
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
        if let state = ready.hardState { hardState = state }
    }

    /// The application's own snapshot: written and synced, then the covered entries are dropped.
    mutating func compact(to newSnapshot: Snapshot) {
        let drop = Int(newSnapshot.metadata.index - snapshot.metadata.index)
        precondition(drop <= entries.count, "compaction beyond the persisted log")
        entries.removeFirst(drop)
        snapshot = newSnapshot
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
