import TestSupport
import Raft
import Wire

/// Seeded generators of every encodable value, so that each round trip and fuzz case replays
/// from its seed.
struct ValueGenerator {
    var random: TestSupport.SplitMix64

    init(seed: UInt64) { random = TestSupport.SplitMix64(seed: seed) }

    mutating func uint64() -> UInt64 {
        // Mix small values (the common case) with extremes (the edge cases).
        switch random.next() % 4 {
        case 0: return random.next() % 16
        case 1: return UInt64.max - random.next() % 4
        default: return random.next()
        }
    }

    mutating func count(_ max: Int) -> Int { Int(random.next() % UInt64(max + 1)) }
    mutating func bool() -> Bool { random.next() & 1 == 1 }
    mutating func nodeID() -> NodeID { NodeID(random.next() % 9 + 1) }
    mutating func bytes(_ max: Int) -> [UInt8] { (0..<count(max)).map { _ in UInt8(truncatingIfNeeded: random.next()) } }

    mutating func membership() -> Membership {
        var ids = Array(Set((0..<count(7)).map { _ in nodeID() })).sorted()
        ids.shuffle(using: &random)
        let split = count(ids.count)
        return Membership(voters: Array(ids[..<split]), learners: Array(ids[split...]))
    }

    mutating func hardState() -> HardState {
        HardState(term: uint64(), votedFor: bool() ? nodeID() : nil, commitIndex: uint64())
    }

    mutating func entry() -> Entry {
        let payload: Entry.Payload
        switch random.next() % 6 {
        case 0: payload = .empty
        case 1: payload = .command(data: bytes(40), stamp: nil)
        case 2: payload = .command(data: bytes(40), stamp: ClientStamp(clientID: uint64(), sequence: uint64()))
        case 3:
            let id = nodeID()
            payload = .membershipChange([.addLearner(id), .promoteLearner(id), .removeNode(id)][count(2)])
        case 4: payload = .initialMembership(membership())
        default: payload = .command(data: [], stamp: nil)
        }
        return Entry(term: uint64(), index: uint64(), payload: payload)
    }

    mutating func snapshotMetadata() -> SnapshotMetadata {
        SnapshotMetadata(index: uint64(), term: uint64(), membership: membership())
    }

    mutating func snapshot() -> Snapshot { Snapshot(metadata: snapshotMetadata(), data: bytes(100)) }

    mutating func voteRequest() -> VoteRequest {
        VoteRequest(lastLogIndex: uint64(), lastLogTerm: uint64(), isLeadershipTransfer: bool())
    }

    /// A message with the payload case `caseIndex` (0..<Message.payloadCaseCount).
    mutating func message(caseIndex: Int) -> Message {
        let payload: Message.Payload
        switch caseIndex {
        case 0: payload = .preVoteRequest(voteRequest())
        case 1: payload = .preVoteResponse(granted: bool())
        case 2: payload = .voteRequest(voteRequest())
        case 3: payload = .voteResponse(granted: bool())
        case 4:
            payload = .appendEntries(AppendEntries(
                prevLogIndex: uint64(), prevLogTerm: uint64(), entries: (0..<count(5)).map { _ in entry() },
                leaderCommitIndex: uint64()))
        case 5:
            let response: AppendEntriesResponse
            switch count(2) {
            case 0: response = .accepted(matchIndex: uint64())
            case 1: response = .rejected(rejectedIndex: uint64(), hintIndex: uint64(), hintTerm: uint64())
            default: response = .staleTerm
            }
            payload = .appendEntriesResponse(response)
        case 6: payload = .heartbeat(Heartbeat(commitIndex: uint64(), readRound: uint64()))
        case 7: payload = .heartbeatResponse(HeartbeatResponse(readRound: uint64()))
        case 8:
            let data = bytes(64)
            let offset = count(1000)
            payload = .installSnapshot(InstallSnapshotChunk(
                metadata: snapshotMetadata(), totalBytes: offset + data.count + count(1000), offset: offset, data: data))
        case 9: payload = .installSnapshotResponse(InstallSnapshotResponse(snapshotIndex: uint64(), bytesReceived: count(1 << 40)))
        case 10: payload = .timeoutNow
        default: preconditionFailure("no payload case \(caseIndex)")
        }
        return Message(from: nodeID(), to: nodeID(), term: uint64(), payload: payload)
    }

    mutating func message() -> Message { message(caseIndex: count(Message.payloadCaseCount - 1)) }
}

extension Message {
    static let payloadCaseCount = 11

    /// Fails to compile when a payload case is added, so the generator above cannot silently miss it.
    var payloadCaseIndex: Int {
        switch payload {
        case .preVoteRequest: 0
        case .preVoteResponse: 1
        case .voteRequest: 2
        case .voteResponse: 3
        case .appendEntries: 4
        case .appendEntriesResponse: 5
        case .heartbeat: 6
        case .heartbeatResponse: 7
        case .installSnapshot: 8
        case .installSnapshotResponse: 9
        case .timeoutNow: 10
        }
    }
}
