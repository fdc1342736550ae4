/// De-duplication of client commands for a replicated state machine (thesis §6.3).
///
/// Raft can commit the same command more than once: a client whose leader crashed after
/// appending, but before answering, retries on the next leader, and both copies may commit.
/// Exactly-once semantics therefore belong to the state machine, which applies a stamped
/// command only if its sequence number is newer than the last one applied for that client.
/// Every replica makes the same decision because it sees the same log, and the table itself
/// must be part of the state machine's snapshot (`sessions`, `init(sessions:clientsMax:)`).
///
/// Clients must issue sequence numbers in increasing order and have at most one command
/// outstanding (as in the thesis), so remembering the last sequence suffices. The table is
/// bounded: past `clientsMax`, the client whose last command has the lowest log index is
/// forgotten, and a late duplicate from it would then apply again (thesis §6.3: sessions
/// "cannot be kept forever"; the expiry must be deterministic, which the log index makes it).
///
/// Usage, for each committed entry in order: `if table.admit(stamp, at: entry.index) { apply }`.
public struct ClientSessionTable: Equatable, Sendable {
    public struct Session: Equatable, Sendable {
        public var clientID: UInt64
        public var lastSequence: UInt64
        /// The log index of the last command admitted for this client (drives eviction).
        public var lastIndex: UInt64

        public init(clientID: UInt64, lastSequence: UInt64, lastIndex: UInt64) {
            self.clientID = clientID
            self.lastSequence = lastSequence
            self.lastIndex = lastIndex
        }
    }

    public let clientsMax: Int
    private var sessionsByClient: [UInt64: Session] = [:]

    public init(clientsMax: Int) {
        precondition(clientsMax > 0, "clientsMax must be positive, got \(clientsMax)")
        self.clientsMax = clientsMax
    }

    /// Restores a table from a snapshot.
    public init(sessions: [Session], clientsMax: Int) {
        self.init(clientsMax: clientsMax)
        for session in sessions { sessionsByClient[session.clientID] = session }
    }

    /// Every session, ordered by client id (deterministic, for snapshots).
    public var sessions: [Session] { sessionsByClient.values.sorted { $0.clientID < $1.clientID } }
    public var count: Int { sessionsByClient.count }

    public func lastSequence(of clientID: UInt64) -> UInt64? { sessionsByClient[clientID]?.lastSequence }

    /// Records `stamp`, committed at log index `index`; returns whether the command is new and must
    /// be applied (false: a duplicate, already applied, to be skipped).
    public mutating func admit(_ stamp: ClientStamp, at index: UInt64) -> Bool {
        if let session = sessionsByClient[stamp.clientID], stamp.sequence <= session.lastSequence {
            return false
        }
        sessionsByClient[stamp.clientID] = Session(clientID: stamp.clientID, lastSequence: stamp.sequence, lastIndex: index)
        if sessionsByClient.count > clientsMax { evictOldest() }
        return true
    }

    private mutating func evictOldest() {
        // Lowest last index first, client id breaking ties: the same choice on every replica.
        let oldest = sessionsByClient.values.min { ($0.lastIndex, $0.clientID) < ($1.lastIndex, $1.clientID) }!
        sessionsByClient[oldest.clientID] = nil
    }
}
