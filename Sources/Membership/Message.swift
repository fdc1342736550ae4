/// The messages members exchange. Plain values; `MembershipCodec` turns them into bytes.
///
/// Every message except `.pushPull` is one datagram: the core packs piggybacked gossip so that
/// `MembershipCodec.encodedBytes(of:)` never exceeds `MembershipConfiguration.maximumPacketBytes`.
/// `.pushPull` carries the whole membership table and goes over a stream connection (memberlist
/// uses TCP for the same reason); its size is bounded by `membersMax`.
public struct MembershipMessage: Hashable, Sendable {
    public var body: Body
    /// SWIM §4.1 "infection-style dissemination": membership updates piggybacked on whatever is
    /// sent anyway. Always empty on `.pushPull`.
    public var gossip: [Gossip]

    public init(_ body: Body, gossip: [Gossip] = []) {
        self.body = body
        self.gossip = gossip
    }

    public enum Body: Hashable, Sendable {
        /// SWIM §3.1 direct probe. Carries the target's ID so that a different machine now
        /// listening on the old address does not answer for it.
        case ping(Ping)
        /// SWIM §3.1 indirect probe: "ping-req(Mj)" asks the receiver to probe the target for us.
        case pingRequest(PingRequest)
        case ack(Ack)
        /// Lifeguard §4.1: the intermediary could not reach the target in time, which tells the
        /// prober its own network path works.
        case nack(Nack)
        /// Only gossip (memberlist's gossip ticker).
        case gossip
        /// Full state exchange (join, anti-entropy, reconnect).
        case pushPull(PushPull)
    }

    /// Whether this message must go over a stream rather than one datagram.
    public var isStream: Bool {
        if case .pushPull = body { return true }
        return false
    }
}

public struct Ping: Hashable, Sendable {
    public var sequenceNumber: UInt32
    public var targetID: MemberID
    public init(sequenceNumber: UInt32, targetID: MemberID) {
        self.sequenceNumber = sequenceNumber
        self.targetID = targetID
    }
}

public struct PingRequest: Hashable, Sendable {
    /// The prober's sequence number, echoed in the forwarded ack or the nack.
    public var sequenceNumber: UInt32
    public var targetID: MemberID
    public var targetAddress: MemberAddress
    /// Lifeguard §4.1: ask for a nack when the target does not answer.
    public var wantsNack: Bool
    public init(sequenceNumber: UInt32, targetID: MemberID, targetAddress: MemberAddress, wantsNack: Bool) {
        self.sequenceNumber = sequenceNumber
        self.targetID = targetID
        self.targetAddress = targetAddress
        self.wantsNack = wantsNack
    }
}

public struct Ack: Hashable, Sendable {
    public var sequenceNumber: UInt32
    public init(sequenceNumber: UInt32) { self.sequenceNumber = sequenceNumber }
}

public struct Nack: Hashable, Sendable {
    public var sequenceNumber: UInt32
    public init(sequenceNumber: UInt32) { self.sequenceNumber = sequenceNumber }
}

public struct PushPull: Hashable, Sendable {
    public enum Kind: UInt8, Hashable, Sendable {
        /// Sent to seeds by `join`; the receiver answers with `.response`.
        case join = 1
        /// Periodic anti-entropy or a reconnect attempt; answered with `.response`.
        case request = 2
        case response = 3
    }

    public var kind: Kind
    /// The sender's whole table including itself, sorted by ID.
    public var members: [Member]

    public init(kind: Kind, members: [Member]) {
        self.kind = kind
        self.members = members
    }
}

/// One membership update (SWIM §4.2's Alive / Suspect / Confirm messages).
public enum Gossip: Hashable, Sendable {
    /// The member is alive with this data at this incarnation (`member.status` is ignored).
    case alive(Member)
    /// `from` suspects the member at this incarnation.
    case suspect(MemberID, incarnation: Incarnation, from: MemberID)
    /// SWIM's Confirm: `from` declared the member dead. When `from` is the member itself it is a
    /// graceful leave (memberlist's convention).
    case dead(MemberID, incarnation: Incarnation, from: MemberID)

    /// The member this update is about; a newer update about the same member replaces an older
    /// one in the broadcast queue.
    public var subject: MemberID {
        switch self {
        case .alive(let member): member.id
        case .suspect(let id, _, _), .dead(let id, _, _): id
        }
    }
}
