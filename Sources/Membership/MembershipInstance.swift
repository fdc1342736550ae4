/// The SWIM + Lifeguard membership core of one member: a value that performs no IO.
///
/// Inputs are `onTick(now:)`, `onMessage(_:from:now:)`, `join(seeds:now:)`, `leave(now:)` and
/// `updateLocalMember(...)`; each returns its own directive enum for the shell to perform (see
/// Directives.swift for the timer contract). Time (`MonotonicInstant`) and randomness
/// (`MembershipRandom`) are injected, so a run replays exactly from its inputs and seed. The core
/// records no metrics; the shell derives them from the directives.
///
/// The protocol is SWIM (Das, Gupta, Motivala, DSN 2002) with memberlist's adaptations and the
/// three Lifeguard extensions (Dadgar, Phillips, Currey 2017, "Lifeguard: Local Health Awareness
/// for More Accurate Failure Detection"):
/// - §3.1 randomised round-robin probing (§4.3), ping, then `indirectChecks` ping-reqs;
/// - §4.2 suspicion before death, incarnation numbers, refutation;
/// - §4.1 infection-style dissemination piggybacked on pings, acks and gossip, each update
///   retransmitted `retransmitMultiplier × ceil(log10(N + 1))` times;
/// - memberlist's periodic push-pull full-state exchange with one random member;
/// - Lifeguard local health multiplier, dynamic suspicion timeouts, nacks, and the buddy system.
///
/// Deviations from SWIM, all from memberlist: a death (Confirm) only overrides state with an
/// incarnation at or below its own, so a restarted member's higher incarnation wins; dead state
/// received by push-pull is merged as suspicion, so a member gets a chance to refute; dead members
/// are retained, gossiped to for a while and periodically contacted (reconnect), so two sides of
/// a healed partition merge back.
public struct MembershipInstance: Sendable {
    public let configuration: MembershipConfiguration
    /// This member as it advertises itself (its incarnation rises when it refutes or changes).
    public internal(set) var localMember: Member

    /// Other members in insertion order; `memberIndex` finds them (`position(of:)`). Array order
    /// is deterministic (unlike Dictionary order), so random picks by index replay from the seed.
    var records: [MemberRecord] = []
    var memberIndex = MemberIndex()
    /// Lifeguard §4.3 suspicion timers of the suspect members, kept beside the records (which
    /// would otherwise all carry room for one: 56 bytes each, times N² in a simulation).
    var suspicions: [MemberID: Suspicion] = [:]
    /// Members alive or suspect, excluding the local member (kept up to date on every change).
    var activeOtherCount = 0
    /// SWIM §4.3 round-robin order, reshuffled at the end of each round.
    var probeOrder: [MemberID] = []
    var probeIndex = 0
    /// IDs of suspect members, for the suspicion timers (usually short).
    var suspectIDs: [MemberID] = []
    /// Dead and left members in the order they died, for retention and reconnects.
    var deadIDs: [MemberID] = []
    var deadIDsStart = 0

    var random: MembershipRandom
    var broadcasts: BroadcastQueue
    /// Lifeguard §4.2 Local Health Multiplier, in 0 ..< awarenessMaxMultiplier.
    public internal(set) var localHealthMultiplier = 0
    var nextSequenceNumber: UInt32 = 0
    var probe: ProbeState?
    var relays: [Relay] = []
    /// Pings to addresses that announced our own ID (see `probeIdentity`), at most
    /// `identityProbesMax` in flight.
    var identityProbes: [IdentityProbe] = []
    /// An address where another live member answers to our ID: two machines share one machine
    /// ID (a cloned image). Set once, never cleared; the shell reports it and the daemon refuses
    /// to run its agent beside the other machine.
    public internal(set) var identityClash: MemberAddress?
    /// Messages dropped whole because an incarnation in them was at or above
    /// `receivedIncarnationCeiling` (forged or corrupt).
    public internal(set) var malformedMessagesDropped = 0

    /// No incarnation reaches 2^62. A member raises its own by one per refutation or data change,
    /// so none gets near; a forged one at UInt64.max would make the accused member's refutation
    /// (`accused + 1`) trap, and as the gossip spreads, crash it again at every restart.
    public static let incarnationCeiling: Incarnation = 1 << 62
    /// Every incarnation accepted from a peer is below this, 2^32 under the ceiling, so the
    /// member's own refutations on top of one stay below it: with one bound for both, a forged
    /// suspicion at 2^62 - 1 was refuted at 2^62, which every peer then dropped as malformed, and
    /// the member could never be seen alive again.
    public static let receivedIncarnationCeiling: Incarnation = incarnationCeiling - (1 << 32)

    var nextProbeAt: MonotonicInstant
    var nextGossipAt: MonotonicInstant
    var nextPushPullAt: MonotonicInstant
    /// The periodic reconnect (every `reconnectIntervalMilliseconds`, first one at a random phase).
    var nextReconnectAt: MonotonicInstant
    /// The last reconnect attempt, periodic or cut off: while no other member is alive here, the
    /// next one is due a probe interval after it (see `reconnectDueAt`).
    var lastReconnectAt: MonotonicInstant
    var joinSeeds: [MemberAddress] = []
    var joinRetryAt: MonotonicInstant?
    public internal(set) var isLeaving = false
    var lastScheduledTick: MonotonicInstant?

    /// - Parameters:
    ///   - localMember: this member's data; its `incarnation` may come from the shell's previous
    ///     run (0 is fine: a restarted member refutes whatever higher incarnation it finds).
    ///   - random: the core's only source of randomness.
    ///   - now: the current time, to stagger the first probe, gossip and push-pull.
    ///   - knownMembers: a table to start from (restored from disk, or a simulation's converged
    ///     cluster). Taken as is and not re-broadcast; later gossip corrects anything stale.
    public init(localMember: Member, configuration: MembershipConfiguration = .lan,
                random: MembershipRandom, now: MonotonicInstant,
                knownMembers: [Member] = []) throws(MembershipError) {
        try Self.validate(metadata: localMember.metadata, version: localMember.version, configuration: configuration)
        var member = localMember
        member.status = .alive
        self.localMember = member
        self.configuration = configuration
        self.random = random
        broadcasts = BroadcastQueue(capacity: configuration.pendingBroadcastsMax)
        // memberlist staggers its tickers randomly so members that start together do not probe
        // and exchange state in lockstep.
        nextProbeAt = now + Int64(self.random.below(Int(configuration.probeIntervalMilliseconds)))
        nextGossipAt = now + Int64(self.random.below(Int(configuration.gossipIntervalMilliseconds)))
        nextPushPullAt = now + Int64(self.random.below(Int(configuration.pushPullIntervalMilliseconds)))
        // Staggered like push-pull: with a fixed first period every member of a cluster started
        // together reconnected in the same instant every 30 s, so a partition that healed just
        // after one such instant waited up to the whole interval (the test bed's slow rejoins).
        nextReconnectAt = now + Int64(self.random.below(Int(configuration.reconnectIntervalMilliseconds)))
        lastReconnectAt = now
        // Announce ourselves to whoever we meet first.
        broadcasts.enqueue(.alive(member))
        // Exactly the room a restored table needs (appending one by one would double the capacity
        // past it, which a simulation of N members pays N times).
        let restoring = min(knownMembers.count, configuration.membersMax)
        records.reserveCapacity(restoring)
        probeOrder.reserveCapacity(restoring)
        memberIndex = MemberIndex(capacity: restoring)
        for known in knownMembers.prefix(configuration.membersMax) where known.id != member.id && position(of: known.id) == nil {
            var restored = known
            // A suspicion needs its timer and its suspecters; without them, start from alive.
            if restored.status == .suspect { restored.status = .alive }
            insert(MemberRecord(member: restored, stateChangedAt: now))
        }
    }

    static func validate(metadata: MemberMetadata, version: String,
                         configuration: MembershipConfiguration) throws(MembershipError) {
        let metadataBytes = MembershipCodec.encodedBytes(of: metadata)
        if metadataBytes > configuration.metadataBytesMax {
            throw .metadataTooLarge(bytes: metadataBytes, bytesMax: configuration.metadataBytesMax)
        }
        if version.utf8.count > Member.versionBytesMax {
            throw .versionTooLong(bytes: version.utf8.count, bytesMax: Member.versionBytesMax)
        }
    }

    // MARK: Queries

    /// The group size N used by the formulas: alive and suspect members including ourselves.
    public var memberCount: Int { activeOtherCount + 1 }

    /// Every member this instance knows, itself included, sorted by ID.
    public var members: [Member] {
        ([localMember] + records.map(\.member)).sorted { $0.id < $1.id }
    }

    public func member(_ id: MemberID) -> Member? {
        if id == localMember.id { return localMember }
        return position(of: id).map { records[$0].member }
    }

    public var pendingBroadcastCount: Int { broadcasts.count }

    /// The suspicion deadline of a suspect member (for tests and diagnostics).
    public func suspicionDeadline(of id: MemberID) -> MonotonicInstant? {
        suspicions[id]?.deadline
    }

    // MARK: Inputs

    /// Runs every timer that is due at `now`.
    public mutating func onTick(now: MonotonicInstant) -> [TickDirective] {
        var effects: [Effect] = []
        retryJoinIfDue(now: now, into: &effects)
        runProbeTimers(now: now, into: &effects)
        runRelayTimers(now: now, into: &effects)
        runIdentityProbeTimers(now: now, into: &effects)
        expireSuspicions(now: now, into: &effects)
        forgetExpiredDead(now: now, into: &effects)
        gossipIfDue(now: now, into: &effects)
        pushPullIfDue(now: now, into: &effects)
        reconnectIfDue(now: now, into: &effects)
        var directives: [TickDirective] = effects.map {
            switch $0 {
            case .send(let message, let address): .send(message, to: address)
            case .memberChanged(let change): .memberChanged(change)
            case .memberForgotten(let id): .memberForgotten(id)
            }
        }
        if let at = rescheduleIfMoved(now: now) { directives.append(.scheduleTick(at: at)) }
        return directives
    }

    /// Handles one decoded message that arrived from `address` (the datagram's or stream's source).
    public mutating func onMessage(_ message: MembershipMessage, from address: MemberAddress,
                                   now: MonotonicInstant) -> [MessageDirective] {
        var effects: [Effect] = []
        guard Self.incarnationsAreBelowCeiling(message) else {
            malformedMessagesDropped += 1
            return []
        }
        // Gossip first: a ping may carry the suspicion we must refute before answering (buddy system).
        for entry in message.gossip { apply(entry, now: now, into: &effects) }
        switch message.body {
        case .ping(let ping): handlePing(ping, from: address, notice: deathNotice(for: message, from: address), into: &effects)
        case .pingRequest(let request): handlePingRequest(request, from: address, now: now, into: &effects)
        case .ack(let ack): handleAck(ack, now: now, into: &effects)
        case .nack(let nack): handleNack(nack)
        case .gossip: break
        case .pushPull(let pushPull): handlePushPull(pushPull, from: address, now: now, into: &effects)
        }
        var directives: [MessageDirective] = effects.compactMap {
            switch $0 {
            case .send(let message, let address): .send(message, to: address)
            case .memberChanged(let change): .memberChanged(change)
            case .memberForgotten: nil
            }
        }
        if let at = rescheduleIfMoved(now: now) { directives.append(.scheduleTick(at: at)) }
        return directives
    }

    static func incarnationsAreBelowCeiling(_ message: MembershipMessage) -> Bool {
        for entry in message.gossip {
            switch entry {
            case .alive(let member): if member.incarnation >= receivedIncarnationCeiling { return false }
            case .suspect(_, let incarnation, _), .dead(_, let incarnation, _): if incarnation >= receivedIncarnationCeiling { return false }
            }
        }
        if case .pushPull(let pushPull) = message.body {
            return pushPull.members.allSatisfy { $0.incarnation < receivedIncarnationCeiling }
        }
        return true
    }

    /// Joins through a seed list: a push-pull with each seed (any one that answers will do),
    /// retried every `joinRetryIntervalMilliseconds` until one answers. An empty list (or one
    /// holding only our own address) starts a new cluster.
    public mutating func join(seeds: [MemberAddress], now: MonotonicInstant) -> [JoinDirective] {
        joinSeeds = Array(seeds.filter { $0 != localMember.address }.prefix(configuration.joinSeedsMax))
        var effects: [Effect] = []
        if joinSeeds.isEmpty {
            joinRetryAt = nil
        } else {
            joinRetryAt = now
            retryJoinIfDue(now: now, into: &effects)
        }
        var directives: [JoinDirective] = effects.compactMap {
            if case .send(let message, let address) = $0 { return .send(message, to: address) }
            return nil
        }
        if let at = rescheduleIfMoved(now: now) { directives.append(.scheduleTick(at: at)) }
        return directives
    }

    /// Graceful leave: the member declares itself dead with `from` = itself (memberlist's left
    /// state), sends that to `gossipNodes` members at once and stops probing. Others then do not
    /// report it as failed. Answers to pings continue until the shell stops.
    public mutating func leave(now: MonotonicInstant) -> [LeaveDirective] {
        var directives: [LeaveDirective] = []
        if !isLeaving {
            isLeaving = true
            probe = nil
            localMember.status = .left
            let goodbye = Gossip.dead(localMember.id, incarnation: localMember.incarnation, from: localMember.id)
            broadcasts.enqueue(goodbye)
            for index in randomIndices(count: configuration.gossipNodes, where: { $0.member.status.isActive }) {
                directives.append(.send(MembershipMessage(.gossip, gossip: [goodbye]), to: records[index].member.address))
            }
        }
        if let at = rescheduleIfMoved(now: now) { directives.append(.scheduleTick(at: at)) }
        return directives
    }

    /// Changes what this member advertises. The change spreads as an alive message with a new
    /// incarnation, which overrides the old data everywhere (SWIM §4.2).
    public mutating func updateLocalMember(metadata: MemberMetadata? = nil, role: MemberRole? = nil,
                                           version: String? = nil, address: MemberAddress? = nil,
                                           now: MonotonicInstant) throws(MembershipError) -> [UpdateDirective] {
        try Self.validate(metadata: metadata ?? localMember.metadata, version: version ?? localMember.version,
                          configuration: configuration)
        localMember.metadata = metadata ?? localMember.metadata
        localMember.role = role ?? localMember.role
        localMember.version = version ?? localMember.version
        localMember.address = address ?? localMember.address
        localMember.incarnation += 1
        broadcasts.enqueue(.alive(localMember))
        var directives: [UpdateDirective] = []
        if let at = rescheduleIfMoved(now: now) { directives.append(.scheduleTick(at: at)) }
        return directives
    }

    // MARK: Scheduling

    /// The earliest time any timer of this instance is due.
    public var nextDeadline: MonotonicInstant {
        var earliest = nextProbeAt
        if let probe {
            earliest = probe.endAt
            if !probe.acked && !probe.indirectSent { earliest = min(earliest, probe.timeoutAt) }
        }
        if isLeaving { earliest = MonotonicInstant(milliseconds: .max) }
        if !broadcasts.isEmpty { earliest = min(earliest, nextGossipAt) }
        if !isLeaving {
            earliest = min(earliest, nextPushPullAt)
            if deadIDs.count > deadIDsStart || isCutOff { earliest = min(earliest, reconnectDueAt) }
        }
        if let joinRetryAt { earliest = min(earliest, joinRetryAt) }
        for relay in relays { earliest = min(earliest, relay.nextDeadline) }
        for probe in identityProbes { earliest = min(earliest, probe.resendAt, probe.giveUpAt) }
        for id in suspectIDs {
            if let deadline = suspicions[id]?.deadline {
                earliest = min(earliest, deadline)
            }
        }
        if let forgetAt = nextForgetAt { earliest = min(earliest, forgetAt) }
        return earliest
    }

    mutating func rescheduleIfMoved(now: MonotonicInstant) -> MonotonicInstant? {
        let at = max(nextDeadline, now)
        if at == lastScheduledTick { return nil }
        lastScheduledTick = at
        return at
    }

    // MARK: Helpers

    /// A member's position in `records`.
    func position(of id: MemberID) -> Int? { memberIndex.find(id, in: records) }

    /// Lifeguard §4.2: "scale the protocol period and probe timeout by (LHM + 1)".
    func scaled(_ milliseconds: Int64) -> Int64 { milliseconds * Int64(localHealthMultiplier + 1) }

    /// Lifeguard §4.2: the score moves by deltas and saturates in 0 ..< awarenessMaxMultiplier.
    mutating func applyAwareness(delta: Int) {
        localHealthMultiplier = min(max(localHealthMultiplier + delta, 0), configuration.awarenessMaxMultiplier - 1)
    }

    mutating func takeSequenceNumber() -> UInt32 {
        nextSequenceNumber &+= 1
        return nextSequenceNumber
    }

    /// A datagram with as much pending gossip piggybacked as fits in `maximumPacketBytes`.
    /// `first` (the buddy system's suspect notice) goes in before the queue's entries.
    mutating func datagram(_ body: MembershipMessage.Body, first: Gossip? = nil) -> MembershipMessage {
        var gossip: [Gossip] = []
        // Budget for the header with a two-byte gossip count (up to 16,383 entries).
        var budget = configuration.maximumPacketBytes - MembershipCodec.encodedHeaderBytes(of: body, gossipCount: 128)
        if let first {
            gossip.append(first)
            budget -= MembershipCodec.encodedBytes(of: first)
        }
        gossip += broadcasts.take(budgetBytes: budget,
                                  transmitLimit: configuration.retransmitLimit(memberCount: memberCount))
        let message = MembershipMessage(body, gossip: gossip)
        assert(MembershipCodec.encodedBytes(of: message) <= configuration.maximumPacketBytes,
               "packed \(MembershipCodec.encodedBytes(of: message)) bytes")
        return message
    }

    /// Up to `count` distinct random indices into `records` whose record passes `include`.
    /// Small tables are scanned exactly; large ones are sampled with a bounded number of tries
    /// (memberlist's kRandomNodes does the same), so the cost does not grow with N.
    mutating func randomIndices(count: Int, where include: (MemberRecord) -> Bool) -> [Int] {
        guard count > 0, !records.isEmpty else { return [] }
        var chosen: [Int] = []
        if records.count <= 64 {
            var candidates = records.indices.filter { include(records[$0]) }
            while chosen.count < count, !candidates.isEmpty {
                chosen.append(candidates.remove(at: random.below(candidates.count)))
            }
            return chosen
        }
        for _ in 0..<(8 * count + 16) where chosen.count < count {
            let index = random.below(records.count)
            if !chosen.contains(index), include(records[index]) { chosen.append(index) }
        }
        return chosen
    }
}

/// What we know about one other member.
struct MemberRecord: Sendable {
    var member: Member
    var stateChangedAt: MonotonicInstant
}

/// Lifeguard §4.3 dynamic suspicion timeout (memberlist's suspicion.go): the timer starts at
/// `maxTimeout` and shrinks logarithmically toward `minTimeout` with each independent
/// confirmation, reaching it after `k` of them:
/// `timeout = max(min, max − (log(C + 1) / log(k + 1)) × (max − min))`.
struct Suspicion: Sendable {
    var incarnation: Incarnation
    var startedAt: MonotonicInstant
    /// Who suspected: the first suspecter and up to `k` confirmers (bounded, no double counting).
    var suspecters: [MemberID]
    var confirmations: Int
    let expectedConfirmations: Int
    let minTimeoutMilliseconds: Int64
    let maxTimeoutMilliseconds: Int64

    init(incarnation: Incarnation, from: MemberID, startedAt: MonotonicInstant, expectedConfirmations: Int,
         minTimeoutMilliseconds: Int64, maxTimeoutMilliseconds: Int64) {
        self.incarnation = incarnation
        self.startedAt = startedAt
        suspecters = [from]
        confirmations = 0
        self.expectedConfirmations = expectedConfirmations
        self.minTimeoutMilliseconds = minTimeoutMilliseconds
        self.maxTimeoutMilliseconds = maxTimeoutMilliseconds
    }

    var timeoutMilliseconds: Int64 {
        // With no confirmations to wait for, memberlist starts at the minimum.
        guard expectedConfirmations >= 1 else { return minTimeoutMilliseconds }
        let fraction = naturalLog(Double(confirmations) + 1) / naturalLog(Double(expectedConfirmations) + 1)
        let raw = Double(maxTimeoutMilliseconds) - fraction * Double(maxTimeoutMilliseconds - minTimeoutMilliseconds)
        return max(minTimeoutMilliseconds, Int64(raw)) // truncation = floor for raw > 0
    }

    var deadline: MonotonicInstant { startedAt + timeoutMilliseconds }

    /// Counts `from` once; returns whether it was a new confirmation (then worth re-gossiping).
    mutating func confirm(from: MemberID) -> Bool {
        guard confirmations < expectedConfirmations, !suspecters.contains(from) else { return false }
        suspecters.append(from)
        confirmations += 1
        return true
    }
}

/// The probe this member has in flight (at most one: SWIM probes one member per period).
struct ProbeState: Sendable {
    var sequenceNumber: UInt32
    var targetID: MemberID
    /// After this, ask `indirectChecks` members to probe for us.
    var timeoutAt: MonotonicInstant
    /// The end of the (scaled) protocol period: without an ack by now, suspect the target.
    var endAt: MonotonicInstant
    var acked = false
    var indirectSent = false
    var expectedNacks = 0
    var nacksReceived = 0
}

/// A ping-req we are serving for another member (SWIM §3.1's intermediary).
struct Relay: Sendable {
    var sequenceNumber: UInt32
    var origin: MemberAddress
    var originSequenceNumber: UInt32
    var wantsNack: Bool
    var nackAt: MonotonicInstant
    var expireAt: MonotonicInstant
    var nackSent = false

    var nextDeadline: MonotonicInstant { wantsNack && !nackSent ? min(nackAt, expireAt) : expireAt }
}

