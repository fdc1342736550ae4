@testable import Raft

func n(_ number: UInt64) -> NodeID { NodeID(number) }

func testConfiguration(
    preVote: Bool = false, checkQuorum: Bool = false, batchBytesMax: Int = 64 * 1024,
    inflightMessagesMax: Int = 64, snapshotChunkBytesMax: Int = 256 * 1024, learnerLag: Int = 0
) -> RaftConfiguration {
    try! RaftConfiguration(
        electionTimeoutTicks: 10, heartbeatIntervalTicks: 1, preVoteEnabled: preVote, checkQuorumEnabled: checkQuorum,
        appendEntriesBatchBytesMax: batchBytesMax, inflightMessagesMax: inflightMessagesMax,
        entryBytesMax: min(64 * 1024, batchBytesMax - Entry.overheadBytes),
        snapshotChunkBytesMax: snapshotChunkBytesMax, learnerPromotionLagEntriesMax: learnerLag)
}

/// A cluster wired directly together: `drain()` processes every `Ready` (persist, send, apply,
/// advance) and delivers messages until the cluster is quiet. Links can be cut per direction.
struct TestCluster {
    var nodes: [RaftNode] = []
    var persisted: [PersistentState] = []
    var applied: [[Entry]] = []
    var readStates: [[ReadState]] = []
    var blocked: Set<[UInt64]> = []
    var delivered: [Message] = []

    /// Voters 1...voters, plus `joining` servers that know nothing yet.
    init(voters: Int, joining: Int = 0, configuration: RaftConfiguration = testConfiguration()) {
        let founders = (1...voters).map { n(UInt64($0)) }
        for number in 1...(voters + joining) {
            let state = number <= voters ? PersistentState.bootstrap(voters: founders) : .joining()
            add(state: state, id: n(UInt64(number)), configuration: configuration)
        }
    }

    init(states: [PersistentState], configuration: RaftConfiguration = testConfiguration()) {
        for (offset, state) in states.enumerated() {
            add(state: state, id: n(UInt64(offset + 1)), configuration: configuration)
        }
    }

    private mutating func add(state: PersistentState, id: NodeID, configuration: RaftConfiguration) {
        nodes.append(try! RaftNode(id: id, configuration: configuration, restoring: state, randomSeed: id.rawValue))
        persisted.append(state)
        applied.append([])
        readStates.append([])
    }

    subscript(id: UInt64) -> RaftNode {
        get { nodes[Int(id) - 1] }
        set { nodes[Int(id) - 1] = newValue }
    }

    func applied(_ id: UInt64) -> [Entry] { applied[Int(id) - 1] }

    /// Processes one node's Ready batches; returns the messages they carried.
    mutating func process(_ id: UInt64) -> [Message] {
        let index = Int(id) - 1
        var messages: [Message] = []
        while let ready = nodes[index].ready() {
            if let snapshot = ready.snapshot {
                persisted[index].snapshot = snapshot
                persisted[index].entries = []
            }
            if let first = ready.entries.first {
                persisted[index].entries.removeAll { $0.index >= first.index }
                persisted[index].entries += ready.entries
            }
            if let hardState = ready.hardState { persisted[index].hardState = hardState }
            messages += ready.messages
            applied[index] += ready.committedEntries
            readStates[index] += ready.readStates
            nodes[index].advance(ready)
        }
        return messages
    }

    mutating func deliver(_ messages: [Message]) {
        for message in messages where !blocked.contains([message.from.rawValue, message.to.rawValue]) {
            delivered.append(message)
            nodes[Int(message.to.rawValue) - 1].step(message)
        }
    }

    mutating func drain(roundsMax: Int = 1000) {
        for _ in 0..<roundsMax {
            var messages: [Message] = []
            for node in nodes { messages += process(node.id.rawValue) }
            if messages.isEmpty { return }
            deliver(messages)
        }
        preconditionFailure("cluster did not quiesce")
    }

    mutating func tick(_ id: UInt64, times: Int = 1) {
        for _ in 0..<times { self[id].tick() }
    }

    /// Ticks every node `times` times, draining after each tick.
    mutating func tickAll(times: Int = 1) {
        for _ in 0..<times {
            for index in nodes.indices { nodes[index].tick() }
            drain()
        }
    }

    /// Makes `id` time out and run for election, then lets the cluster settle.
    mutating func campaign(_ id: UInt64) {
        tick(id, times: self[id].randomizedElectionTimeoutTicks)
        drain()
    }

    mutating func isolate(_ id: UInt64) {
        for other in nodes.map(\.id.rawValue) where other != id {
            blocked.insert([id, other])
            blocked.insert([other, id])
        }
    }

    mutating func healAll() { blocked = [] }

    func commands(_ id: UInt64) -> [[UInt8]] {
        applied(id).compactMap { if case .command(let data, _) = $0.payload { return data } else { return nil } }
    }
}

/// Builds a persisted log from a list of terms (index i + 1 has terms[i]); entry 1 is the
/// founding membership of `voters`.
func persistedLog(terms: [UInt64], voters: Int, currentTerm: UInt64, commitIndex: UInt64 = 1) -> PersistentState {
    var state = PersistentState.bootstrap(voters: (1...voters).map { n(UInt64($0)) })
    for (offset, term) in terms.enumerated().dropFirst() {
        state.entries.append(Entry(term: term, index: UInt64(offset + 1), payload: .command(data: [UInt8(offset)], stamp: nil)))
    }
    state.hardState = HardState(term: currentTerm, votedFor: nil, commitIndex: commitIndex)
    return state
}
