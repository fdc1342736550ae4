/// Identifies one server of the cluster. Zero is reserved and never names a server, so that a
/// wire decoder (module Wire) can use it for "none" without an optional.
public struct NodeID: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var rawValue: UInt64

    public init(_ rawValue: UInt64) {
        precondition(rawValue != 0, "NodeID 0 is reserved for 'no node'")
        self.rawValue = rawValue
    }

    public static func < (lhs: NodeID, rhs: NodeID) -> Bool { lhs.rawValue < rhs.rawValue }
    public var description: String { "n\(rawValue)" }
}

/// What a server must keep on stable storage before it answers any RPC (figure 2, "Persistent
/// state on all servers"). `commitIndex` is volatile in the paper; we persist it too so that a
/// restarted server can hand committed entries to its state machine without waiting for a leader.
public struct HardState: Equatable, Sendable {
    public var term: UInt64
    public var votedFor: NodeID?
    public var commitIndex: UInt64

    public init(term: UInt64 = 0, votedFor: NodeID? = nil, commitIndex: UInt64 = 0) {
        self.term = term
        self.votedFor = votedFor
        self.commitIndex = commitIndex
    }
}

/// Which servers take part in consensus. Voters count towards every majority (elections and
/// commitment); learners receive the log but never vote and never count (thesis §4.2.1: new
/// servers join "as non-voting members" until they have caught up).
/// Both arrays are kept sorted and disjoint so that iteration order is deterministic.
public struct Membership: Equatable, Sendable, CustomStringConvertible {
    public private(set) var voters: [NodeID]
    public private(set) var learners: [NodeID]

    public init(voters: [NodeID], learners: [NodeID] = []) {
        let voterSet = Set(voters)
        precondition(voterSet.count == voters.count, "duplicate voter in \(voters)")
        precondition(Set(learners).count == learners.count, "duplicate learner in \(learners)")
        precondition(voterSet.isDisjoint(with: learners), "a node is both voter and learner: \(voters) \(learners)")
        self.voters = voters.sorted()
        self.learners = learners.sorted()
    }

    public static let empty = Membership(voters: [])

    /// Voters then learners, each sorted.
    public var members: [NodeID] { voters + learners }
    public func isVoter(_ id: NodeID) -> Bool { voters.contains(id) }
    public func isLearner(_ id: NodeID) -> Bool { learners.contains(id) }
    public func contains(_ id: NodeID) -> Bool { isVoter(id) || isLearner(id) }
    /// The number of voters that make a majority. Zero voters need zero (nothing can be decided).
    public var quorum: Int { voters.isEmpty ? 0 : voters.count / 2 + 1 }

    /// Checks that `change` makes sense against this membership; nil when it does.
    public func rejection(of change: MembershipChange) -> MembershipChangeRejection? {
        switch change {
        case .addLearner(let id):
            return contains(id) ? .alreadyMember(id) : nil
        case .promoteLearner(let id):
            return isLearner(id) ? nil : .notALearner(id)
        case .removeNode(let id):
            if !contains(id) { return .notAMember(id) }
            if voters == [id] { return .wouldRemoveLastVoter(id) }
            return nil
        }
    }

    public func applying(_ change: MembershipChange) -> Membership {
        precondition(rejection(of: change) == nil, "applying invalid change \(change) to \(self)")
        switch change {
        case .addLearner(let id):
            return Membership(voters: voters, learners: learners + [id])
        case .promoteLearner(let id):
            return Membership(voters: voters + [id], learners: learners.filter { $0 != id })
        case .removeNode(let id):
            return Membership(voters: voters.filter { $0 != id }, learners: learners.filter { $0 != id })
        }
    }

    public var description: String { "voters=\(voters) learners=\(learners)" }
}

/// One single-server membership change (thesis §4.1: "only one server at a time", which keeps
/// every majority of the old configuration overlapping every majority of the new one).
/// There is deliberately no "add voter": a new server first joins as a learner and is promoted
/// once it has caught up (thesis §4.2.1), so that it never stalls commitment while it copies the log.
public enum MembershipChange: Equatable, Sendable {
    case addLearner(NodeID)
    case promoteLearner(NodeID)
    case removeNode(NodeID)
}

public enum MembershipChangeRejection: Error, Equatable, Sendable {
    case alreadyMember(NodeID)
    case notALearner(NodeID)
    case notAMember(NodeID)
    case wouldRemoveLastVoter(NodeID)
    /// The learner's log lags the leader's by more than `learnerPromotionLagEntriesMax`.
    case learnerNotCaughtUp(NodeID, matchIndex: UInt64, lastIndex: UInt64)
}

/// Identifies one client request for de-duplication in the replicated state machine (thesis
/// §6.3). Raft itself never looks inside: see `ClientSessionTable`.
public struct ClientStamp: Hashable, Sendable {
    public var clientID: UInt64
    public var sequence: UInt64

    public init(clientID: UInt64, sequence: UInt64) {
        self.clientID = clientID
        self.sequence = sequence
    }
}

/// One log entry. Its index and term together identify it (§5.3, log matching).
public struct Entry: Equatable, Sendable {
    public var term: UInt64
    public var index: UInt64
    public var payload: Payload

    public enum Payload: Equatable, Sendable {
        /// The no-op a new leader appends at the start of its term (§8), so that it can commit
        /// entries of earlier terms and learn the commit index.
        case empty
        /// Opaque bytes for the replicated state machine, optionally stamped for de-duplication.
        case command(data: [UInt8], stamp: ClientStamp?)
        /// Takes effect on every server as soon as it is appended, committed or not (thesis §4.1).
        case membershipChange(MembershipChange)
        /// Entry 1 of every cluster: the founding membership (see `PersistentState.bootstrap`).
        /// Being an entry, it reaches servers that join later like any other.
        case initialMembership(Membership)
    }

    public init(term: UInt64, index: UInt64, payload: Payload) {
        self.term = term
        self.index = index
        self.payload = payload
    }

    /// The size used for every byte bound (batches, in-flight windows, the uncommitted log). It
    /// counts a fixed per-entry overhead so that empty entries cannot be sent in unbounded numbers.
    public var sizeBytes: Int {
        switch payload {
        case .empty, .membershipChange: return Entry.overheadBytes
        case .initialMembership(let membership): return Entry.overheadBytes + 8 * membership.members.count
        case .command(let data, _): return Entry.overheadBytes + data.count
        }
    }

    public static let overheadBytes = 32
}

/// Describes the state a snapshot captures: everything through `index` (whose entry had `term`),
/// and the membership in force at that index.
public struct SnapshotMetadata: Equatable, Sendable {
    public var index: UInt64
    public var term: UInt64
    public var membership: Membership

    public init(index: UInt64, term: UInt64, membership: Membership) {
        self.index = index
        self.term = term
        self.membership = membership
    }
}

/// A state-machine image produced by the application (§7). `data` is opaque to Raft.
public struct Snapshot: Equatable, Sendable {
    public var metadata: SnapshotMetadata
    public var data: [UInt8]

    public init(metadata: SnapshotMetadata, data: [UInt8]) {
        self.metadata = metadata
        self.data = data
    }
}

/// Everything a server reads back from stable storage when it starts.
///
/// A brand-new cluster starts every founding server from `bootstrap(voters:)`: the same log entry 1
/// (term 1) holding the founding membership, already committed, on every founder, so their logs
/// match from the start. A server that will join an existing cluster starts from `joining()` (no
/// log, no members known) and receives everything, entry 1 included, once added as a learner.
public struct PersistentState: Equatable, Sendable {
    public var hardState: HardState
    public var snapshot: Snapshot
    /// Entries after `snapshot.metadata.index`, contiguous.
    public var entries: [Entry]

    public init(hardState: HardState, snapshot: Snapshot, entries: [Entry]) {
        self.hardState = hardState
        self.snapshot = snapshot
        self.entries = entries
    }

    public static func bootstrap(voters: [NodeID]) -> PersistentState {
        precondition(!voters.isEmpty, "a cluster needs at least one founding voter")
        return PersistentState(
            hardState: HardState(term: 1, votedFor: nil, commitIndex: 1),
            snapshot: Snapshot(metadata: SnapshotMetadata(index: 0, term: 0, membership: .empty), data: []),
            entries: [Entry(term: 1, index: 1, payload: .initialMembership(Membership(voters: voters)))])
    }

    public static func joining() -> PersistentState {
        PersistentState(
            hardState: HardState(),
            snapshot: Snapshot(metadata: SnapshotMetadata(index: 0, term: 0, membership: .empty), data: []),
            entries: [])
    }
}

/// Why the persisted state handed to `RaftNode.init` cannot be used. Storage corruption is an
/// operating error, so it is thrown rather than trapped.
public enum PersistentStateError: Error, Equatable, Sendable {
    /// A term or index at or above `RaftLimits.valueCeiling`: no real log gets there.
    case valueBeyondCeiling(field: String, value: UInt64)
    case entriesNotContiguous(expectedIndex: UInt64, foundIndex: UInt64)
    case entryTermBelowSnapshot(index: UInt64, term: UInt64, snapshotTerm: UInt64)
    case commitIndexBeyondLog(commitIndex: UInt64, lastIndex: UInt64)
    case termBelowLog(term: UInt64, lastLogTerm: UInt64)
}

/// Bounds on the values a peer or a disk may hand the core.
public enum RaftLimits {
    /// Every term and index the core accepts is below 2^62. A term grows by one per election and
    /// an index by one per entry, so no real cluster comes near (at a million elections or
    /// entries a second, 146,000 years); a value above is forged or corrupt. Refusing it keeps
    /// every `+ 1` on a received value from trapping: a term of UInt64.max in a heartbeat would
    /// otherwise reach the WAL and crash the voter at every restart.
    public static let valueCeiling: UInt64 = 1 << 62
    /// Every term and index received from a peer is below this, 2^32 under `valueCeiling`: the
    /// node's own elections and appends add to what it received, and what it persists must stay
    /// below `valueCeiling` or its next start refuses it. With one bound for both, a single
    /// forged TimeoutNow at term 2^62 - 1 made the node campaign at 2^62, persist it and never
    /// start again (found by the raft-core fuzzer).
    public static let receivedValueCeiling: UInt64 = valueCeiling - (1 << 32)

    static func isReceivable(_ values: UInt64...) -> Bool {
        values.allSatisfy { $0 < receivedValueCeiling }
    }
}

/// SplitMix64 (Steele, Lea and Flood, 2014): tiny, fast and fully determined by its seed. The core
/// draws every random number from one of these, seeded by the caller, so that a run replays
/// exactly from its seed.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    public private(set) var state: UInt64

    public init(seed: UInt64) { self.state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
