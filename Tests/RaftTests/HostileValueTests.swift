import TestSupport
import Testing
@testable import Raft

/// Values that decode cleanly but no real peer or disk produces: terms and indexes at or near
/// UInt64.max, snapshot offsets near Int.max. Each is dropped (and counted) before any state
/// changes; none traps, none reaches the persisted state.
@Suite(.onBackgroundThreads) struct HostileValueTests {
    static let huge: [UInt64] = [RaftLimits.valueCeiling, RaftLimits.valueCeiling + 1, UInt64.max - 1, UInt64.max]

    /// A three-voter cluster with 1 as leader, and what 2 persisted.
    func cluster() -> TestCluster {
        var cluster = TestCluster(voters: 3)
        cluster.campaign(1)
        #expect(cluster[1].role == .leader)
        return cluster
    }

    static func payloads(extreme value: UInt64) -> [Message.Payload] {
        let request = VoteRequest(lastLogIndex: value, lastLogTerm: value, isLeadershipTransfer: true)
        let metadata = SnapshotMetadata(index: value, term: 1, membership: Membership(voters: [n(1), n(2), n(3)]))
        return [
            .preVoteRequest(request), .voteRequest(request),
            .appendEntries(AppendEntries(prevLogIndex: value, prevLogTerm: 1, entries: [], leaderCommitIndex: 1)),
            .appendEntries(AppendEntries(prevLogIndex: value - 1, prevLogTerm: 1,
                                         entries: [Entry(term: 1, index: value, payload: .empty)], leaderCommitIndex: value)),
            .appendEntries(AppendEntries(prevLogIndex: 1, prevLogTerm: 1, entries: [], leaderCommitIndex: value)),
            .appendEntriesResponse(.accepted(matchIndex: value)),
            .appendEntriesResponse(.rejected(rejectedIndex: value, hintIndex: value, hintTerm: value)),
            .heartbeat(Heartbeat(commitIndex: value, readRound: value)),
            .heartbeatResponse(HeartbeatResponse(readRound: value)),
            .installSnapshot(InstallSnapshotChunk(metadata: metadata, totalBytes: 10, offset: 0, data: [1])),
            .installSnapshotResponse(InstallSnapshotResponse(snapshotIndex: value, bytesReceived: 1)),
        ]
    }

    @Test(arguments: huge)
    func everyMessageKindWithAnExtremeTermOrIndexIsDroppedAndCounted(value: UInt64) {
        var base = cluster()
        for target in [1, 2] as [UInt64] {
            // The term itself, on every kind, timeoutNow and the responses included.
            var kinds = Self.payloads(extreme: 2)
            kinds += [.timeoutNow, .voteResponse(granted: true), .preVoteResponse(granted: true), .appendEntriesResponse(.staleTerm)]
            for payload in kinds {
                var cluster = base
                let before = cluster[target].hardState
                let from = target == 1 ? n(2) : n(1)
                cluster[target].step(Message(from: from, to: n(target), term: value, payload: payload))
                #expect(cluster[target].malformedMessagesDropped == 1, "term \(value), \(payload)")
                #expect(cluster[target].hardState == before)
                cluster.tickAll(times: 30)
                #expect(cluster[target].term < RaftLimits.valueCeiling)
            }
            // Every index-like field, at the cluster's own term.
            for payload in Self.payloads(extreme: value) {
                var cluster = base
                let term = cluster[target].term
                let from = target == 1 ? n(2) : n(1)
                cluster[target].step(Message(from: from, to: n(target), term: term, payload: payload))
                #expect(cluster[target].malformedMessagesDropped == 1, "\(payload)")
                cluster.tickAll(times: 30)
                #expect(cluster[target].commitIndex < RaftLimits.valueCeiling && cluster[target].lastIndex < RaftLimits.valueCeiling)
            }
        }
        base.tickAll(times: 5)
    }

    /// Found by the raft-core fuzzer: a leader's AppendEntries carrying an initial membership
    /// after the log already has one (or a membership change that does not fit the membership
    /// where it would land) trapped the follower. Now dropped, counted, and the log unchanged.
    @Test func membershipEntriesThatDoNotFitWhereTheyWouldLandAreDropped() {
        let founders = Membership(voters: [n(1), n(2), n(3)])
        let payloads: [Entry.Payload] = [
            .initialMembership(founders),
            .membershipChange(.removeNode(n(9))),
            .membershipChange(.promoteLearner(n(2))),
            .membershipChange(.addLearner(n(3))),
        ]
        for payload in payloads {
            var cluster = cluster()
            let term = cluster[2].term
            let last = cluster[2].lastIndex
            let lastTerm = cluster[2].log.term(at: last) ?? 0
            // Behind a valid entry, so that the check looks at where each entry would land.
            let entries = [Entry(term: term, index: last + 1, payload: .empty), Entry(term: term, index: last + 2, payload: payload)]
            cluster[2].step(Message(from: n(1), to: n(2), term: term,
                                    payload: .appendEntries(AppendEntries(prevLogIndex: last, prevLogTerm: lastTerm, entries: entries, leaderCommitIndex: last))))
            #expect(cluster[2].malformedMessagesDropped == 1, "\(payload)")
            #expect(cluster[2].lastIndex == last, "\(payload)")
            #expect(cluster[2].log.membership == founders)
        }
        // The same entries where they do fit are taken: the check refuses only what cannot be.
        var cluster = cluster()
        let term = cluster[2].term
        let last = cluster[2].lastIndex
        let lastTerm = cluster[2].log.term(at: last) ?? 0
        let entries = [Entry(term: term, index: last + 1, payload: .membershipChange(.addLearner(n(4))))]
        cluster[2].step(Message(from: n(1), to: n(2), term: term,
                                payload: .appendEntries(AppendEntries(prevLogIndex: last, prevLogTerm: lastTerm, entries: entries, leaderCommitIndex: last))))
        #expect(cluster[2].malformedMessagesDropped == 0)
        #expect(cluster[2].lastIndex == last + 1)
        #expect(cluster[2].log.membership.learners == [n(4)])
    }

    @Test func aSnapshotChunkWhoseOffsetWouldOverflowIsDropped() {
        var cluster = cluster()
        let metadata = SnapshotMetadata(index: 5, term: 1, membership: Membership(voters: [n(1), n(2), n(3)]))
        let term = cluster[2].term
        for (offset, total) in [(Int.max, Int.max), (Int.max - 1, Int.max), (5, 4), (-1, 10)] {
            cluster[2].step(Message(from: n(1), to: n(2), term: term,
                                    payload: .installSnapshot(InstallSnapshotChunk(metadata: metadata, totalBytes: total, offset: offset, data: [1, 2]))))
        }
        #expect(cluster[2].malformedMessagesDropped == 4)
        #expect(cluster[2].snapshotMetadata.index == 0)
    }

    /// Entries and snapshot chunks larger than any leader of this configuration sends are dropped
    /// and counted; at exactly the limits they are taken (a forged 3 MiB entry once reached a
    /// follower whose write-ahead log could not hold it, and the replica stopped).
    @Test func entriesAndChunksPastTheConfiguredLimitsAreDroppedAndCounted() {
        var cluster = cluster()
        let limits = cluster[2].configuration
        let term = cluster[2].term
        func append(_ dataSizes: [Int]) -> Message {
            let last = cluster[2].lastIndex
            let entries = dataSizes.enumerated().map { offset, size in
                Entry(term: term, index: last + 1 + UInt64(offset), payload: .command(data: [UInt8](repeating: 7, count: size), stamp: nil))
            }
            return Message(from: n(1), to: n(2), term: term, payload: .appendEntries(AppendEntries(
                prevLogIndex: last, prevLogTerm: cluster[2].log.lastTerm, entries: entries, leaderCommitIndex: cluster[2].commitIndex)))
        }
        let batchHalf = limits.appendEntriesBatchBytesMax / 2 - Entry.overheadBytes
        for (sizes, accepted) in [([limits.entryBytesMax + 1], false), ([limits.entryBytesMax], true),
                                  ([batchHalf, batchHalf + 1], false), ([batchHalf, batchHalf], true)] {
            let before = (cluster[2].lastIndex, cluster[2].malformedMessagesDropped)
            cluster[2].step(append(sizes))
            #expect(cluster[2].lastIndex == before.0 + (accepted ? UInt64(sizes.count) : 0), "\(sizes)")
            #expect(cluster[2].malformedMessagesDropped == before.1 + (accepted ? 0 : 1), "\(sizes)")
        }
        let metadata = SnapshotMetadata(index: 1_000, term: term, membership: Membership(voters: [n(1), n(2), n(3)]))
        for (total, size) in [(limits.snapshotBytesMax + 1, 1), (limits.snapshotChunkBytesMax + 1, limits.snapshotChunkBytesMax + 1)] {
            let before = cluster[2].malformedMessagesDropped
            cluster[2].step(Message(from: n(1), to: n(2), term: term, payload: .installSnapshot(
                InstallSnapshotChunk(metadata: metadata, totalBytes: total, offset: 0, data: [UInt8](repeating: 1, count: size)))))
            #expect(cluster[2].malformedMessagesDropped == before + 1, "total \(total), chunk \(size)")
        }
        #expect(cluster[2].snapshotMetadata.index == 0)
    }

    /// Random messages whose every number is drawn near the edges (0, 1, the ceiling, UInt64.max,
    /// Int.max): no trap. Received values stay below the ceiling; a node's own elections add one
    /// each on top (a term of ceiling - 1 accepted, then an election), far from UInt64.max.
    @Test func randomMessagesWithExtremeFieldsNeverTrap() {
        var random = TestSupport.SplitMix64(seed: 41)
        let edges: [UInt64] = [0, 1, 2, 3, RaftLimits.receivedValueCeiling - 1, RaftLimits.receivedValueCeiling,
                               RaftLimits.valueCeiling - 1, RaftLimits.valueCeiling, UInt64.max - 1, UInt64.max]
        func pick() -> UInt64 { Bool.random(using: &random) ? edges.randomElement(using: &random)! : UInt64.random(in: 0...20, using: &random) }
        var cluster = cluster()
        let membership = Membership(voters: [n(1), n(2), n(3)])
        for _ in 0..<20_000 {
            let target = UInt64.random(in: 1...3, using: &random)
            let from = n([1, 2, 3].filter { $0 != target }.randomElement(using: &random)!)
            let first = pick()
            let entries = (0..<Int.random(in: 0...2, using: &random)).map { offset in
                Entry(term: pick(), index: first &+ UInt64(offset), payload: .empty)
            }
            let payload: Message.Payload
            switch Int.random(in: 0..<9, using: &random) {
            case 0: payload = .voteRequest(VoteRequest(lastLogIndex: pick(), lastLogTerm: pick(), isLeadershipTransfer: Bool.random(using: &random)))
            case 1: payload = .preVoteRequest(VoteRequest(lastLogIndex: pick(), lastLogTerm: pick(), isLeadershipTransfer: false))
            case 2: payload = .appendEntries(AppendEntries(prevLogIndex: first &- 1, prevLogTerm: pick(), entries: entries, leaderCommitIndex: pick()))
            case 3: payload = .appendEntriesResponse(Bool.random(using: &random) ? .accepted(matchIndex: pick())
                                                     : .rejected(rejectedIndex: pick(), hintIndex: pick(), hintTerm: pick()))
            case 4: payload = .heartbeat(Heartbeat(commitIndex: pick(), readRound: pick()))
            case 5: payload = .heartbeatResponse(HeartbeatResponse(readRound: pick()))
            case 6:
                let total = [0, 1, 10, Int.max].randomElement(using: &random)!
                payload = .installSnapshot(InstallSnapshotChunk(metadata: SnapshotMetadata(index: pick(), term: pick(), membership: membership),
                                                                totalBytes: total, offset: [0, 1, 9, Int.max - 1, Int.max].randomElement(using: &random)!,
                                                                data: [1]))
            case 7: payload = .installSnapshotResponse(InstallSnapshotResponse(snapshotIndex: pick(), bytesReceived: [0, 1, Int.max].randomElement(using: &random)!))
            default: payload = .timeoutNow
            }
            cluster[target].step(Message(from: from, to: n(target), term: pick(), payload: payload))
            if Int.random(in: 0..<10, using: &random) == 0 { cluster.tickAll(times: 1) }
            for id in 1...3 as ClosedRange<UInt64> {
                // Below the ceiling a restart accepts: what the node persists, it can start from.
                #expect(cluster[id].hardState.term < RaftLimits.valueCeiling)
                #expect(cluster[id].lastIndex < RaftLimits.valueCeiling)
            }
        }
    }

    /// Found by the raft-core fuzzer: a TimeoutNow at term 2^62 - 1 was accepted, the node
    /// campaigned at 2^62, persisted it, and refused its own hard state at the next start. Now
    /// the last receivable term leaves room for the node's own elections.
    @Test func aNodeDrivenToTheHighestReceivableTermCanStillRestart() throws {
        var cluster = cluster()
        let before = cluster[2].malformedMessagesDropped
        cluster[2].step(Message(from: n(1), to: n(2), term: RaftLimits.receivedValueCeiling, payload: .timeoutNow))
        #expect(cluster[2].malformedMessagesDropped == before + 1, "at the received ceiling: dropped")
        cluster[2].step(Message(from: n(1), to: n(2), term: RaftLimits.receivedValueCeiling - 1, payload: .timeoutNow))
        cluster.tickAll(times: 60)
        #expect(cluster[2].term >= RaftLimits.receivedValueCeiling, "it campaigned past what it received")
        var state = PersistentState.bootstrap(voters: [n(1), n(2), n(3)])
        state.hardState = cluster[2].hardState
        state.hardState.commitIndex = 1
        _ = try RaftNode(id: n(2), configuration: testConfiguration(), restoring: state, randomSeed: 1)
    }

    @Test func aPersistedStatePastTheCeilingIsRefusedNotTrapped() {
        var state = PersistentState.bootstrap(voters: [n(1)])
        state.hardState.term = UInt64.max
        #expect(throws: PersistentStateError.valueBeyondCeiling(field: "term", value: UInt64.max)) {
            try RaftNode(id: n(1), configuration: testConfiguration(), restoring: state, randomSeed: 1)
        }
        var snapshotState = PersistentState.joining()
        snapshotState.snapshot.metadata.index = UInt64.max
        #expect(throws: PersistentStateError.valueBeyondCeiling(field: "snapshot index", value: UInt64.max)) {
            try RaftNode(id: n(1), configuration: testConfiguration(), restoring: snapshotState, randomSeed: 1)
        }
    }
}
