/// The leader's view of one follower or learner (figure 2's nextIndex and matchIndex, plus the
/// flow control etcd raft layers on top).
///
/// - `probe`: the leader does not know where the follower's log diverges. It sends one
///   AppendEntries at a time and waits for the answer (or the next heartbeat response).
/// - `replicate`: the follower accepted an append. The leader streams entries optimistically
///   (pipelining), bounded by `inflightMessagesMax` messages and `inflightBytesMax` bytes.
/// - `snapshot`: the entries the follower needs are compacted away; the leader sends the snapshot
///   in chunks, one chunk in flight.
struct Progress: Sendable {
    enum State: Equatable, Sendable {
        case probe
        case replicate
        case snapshot(index: UInt64, bytesAcknowledged: Int, bytesAcknowledgedAtLastHeartbeat: Int)
    }

    var matchIndex: UInt64 = 0
    var nextIndex: UInt64
    var state: State = .probe
    /// In `probe`: an append is outstanding, do not send another.
    var probeSent = false
    var inflight: Inflight
    /// Heard from since the last check-quorum round (thesis §6.2).
    var recentlyActive = false
    /// The newest ReadIndex round this follower answered (thesis §6.4).
    var readRoundAcknowledged: UInt64 = 0
    /// Detects a replication stream that made no progress for a whole heartbeat interval.
    var matchIndexAtLastHeartbeatResponse: UInt64 = 0

    init(nextIndex: UInt64, inflightMessagesMax: Int, inflightBytesMax: Int) {
        self.nextIndex = nextIndex
        self.inflight = Inflight(messagesMax: inflightMessagesMax, bytesMax: inflightBytesMax)
    }

    var isPaused: Bool {
        switch state {
        case .probe: return probeSent
        case .replicate: return inflight.isFull
        case .snapshot: return true
        }
    }

    mutating func becomeProbe() {
        // After a snapshot the follower holds at least the snapshot: resume just after it.
        if case .snapshot(let index, _, _) = state {
            nextIndex = max(matchIndex + 1, index + 1)
        } else {
            nextIndex = matchIndex + 1
        }
        state = .probe
        probeSent = false
        inflight.removeAll()
    }

    mutating func becomeReplicate() {
        state = .replicate
        nextIndex = matchIndex + 1
        probeSent = false
        inflight.removeAll()
    }

    mutating func becomeSnapshot(index: UInt64) {
        state = .snapshot(index: index, bytesAcknowledged: 0, bytesAcknowledgedAtLastHeartbeat: -1)
        probeSent = false
        inflight.removeAll()
    }

    /// Records an acceptance; returns false if it told the leader nothing new (stale or duplicate).
    mutating func acknowledge(matchIndex newMatch: UInt64) -> Bool {
        var updated = false
        if newMatch > matchIndex {
            matchIndex = newMatch
            updated = true
            probeSent = false
        }
        nextIndex = max(nextIndex, newMatch + 1)
        inflight.free(through: newMatch)
        return updated
    }

    /// Handles a rejection of an append whose prevLogIndex was `rejectedIndex`. `hintNextIndex` is
    /// the leader's estimate of the first index worth sending. Returns false for stale rejections.
    mutating func backtrack(rejectedIndex: UInt64, hintNextIndex: UInt64) -> Bool {
        switch state {
        case .replicate:
            // Everything through matchIndex is known to match, so a rejection at or below it is old.
            guard rejectedIndex > matchIndex else { return false }
            becomeProbe()
            nextIndex = max(min(rejectedIndex, hintNextIndex), matchIndex + 1)
            return true
        case .probe:
            // Only the answer to the outstanding probe (prevLogIndex == nextIndex - 1) counts.
            guard rejectedIndex == nextIndex - 1 else { return false }
            nextIndex = max(min(rejectedIndex, hintNextIndex), matchIndex + 1)
            probeSent = false
            return true
        case .snapshot:
            return false
        }
    }
}

/// The appends sent to one follower in the replicate state and not yet acknowledged, oldest first.
struct Inflight: Sendable {
    let messagesMax: Int
    let bytesMax: Int
    private(set) var lastIndexes: [UInt64] = []
    private(set) var sizes: [Int] = []
    private(set) var bytes = 0

    init(messagesMax: Int, bytesMax: Int) {
        self.messagesMax = messagesMax
        self.bytesMax = bytesMax
    }

    var isFull: Bool { lastIndexes.count >= messagesMax || bytes >= bytesMax }
    var count: Int { lastIndexes.count }
    var bytesAvailable: Int { max(0, bytesMax - bytes) }

    mutating func add(lastIndex: UInt64, bytes messageBytes: Int) {
        precondition(!isFull, "inflight add while full (\(lastIndexes.count) messages, \(bytes) bytes)")
        precondition(lastIndexes.last.map { $0 < lastIndex } ?? true, "inflight indexes must increase")
        lastIndexes.append(lastIndex)
        sizes.append(messageBytes)
        bytes += messageBytes
    }

    mutating func free(through index: UInt64) {
        var freed = 0
        while freed < lastIndexes.count && lastIndexes[freed] <= index {
            bytes -= sizes[freed]
            freed += 1
        }
        lastIndexes.removeFirst(freed)
        sizes.removeFirst(freed)
    }

    /// Lets one more message out when the window is stuck (its acknowledgements may have been
    /// lost); the follower's answer to it re-synchronises the window.
    mutating func freeFirst() {
        guard !lastIndexes.isEmpty else { return }
        bytes -= sizes.removeFirst()
        lastIndexes.removeFirst()
    }

    mutating func removeAll() {
        lastIndexes.removeAll()
        sizes.removeAll()
        bytes = 0
    }
}
