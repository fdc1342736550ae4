// Failure detection: SWIM §3.1 probing with Lifeguard's nacks and local health (§4.1, §4.2).

extension MembershipInstance {
    mutating func runProbeTimers(now: MonotonicInstant, into effects: inout [Effect]) {
        guard !isLeaving else { return }
        if var current = probe {
            if !current.acked, !current.indirectSent, now >= current.timeoutAt {
                sendIndirectProbes(&current, into: &effects)
            }
            probe = current
            guard now >= current.endAt else { return }
            finishProbe(current, now: now, into: &effects)
            probe = nil
        }
        if now >= nextProbeAt { startProbe(now: now, into: &effects) }
    }

    /// SWIM §4.3: "the member selects ping targets in a round-robin fashion" over a list that is
    /// randomly permuted at the end of each traversal, bounding the worst-case detection time.
    mutating func nextProbeTarget() -> MemberID? {
        guard activeOtherCount > 0 else { return nil }
        var examined = 0
        while examined <= probeOrder.count {
            if probeIndex >= probeOrder.count {
                var order = probeOrder
                probeOrder = []
                order.removeAll { position(of: $0) == nil }
                shuffle(&order)
                probeOrder = order
                probeIndex = 0
                if probeOrder.isEmpty { return nil }
            }
            let id = probeOrder[probeIndex]
            probeIndex += 1
            examined += 1
            // memberlist probes suspect members (that is where the buddy system helps) but not
            // dead or left ones.
            if let index = position(of: id), records[index].member.status.isActive { return id }
        }
        return nil
    }

    mutating func shuffle(_ ids: inout [MemberID]) {
        guard ids.count > 1 else { return }
        for i in stride(from: ids.count - 1, to: 0, by: -1) {
            ids.swapAt(i, random.below(i + 1))
        }
    }

    mutating func startProbe(now: MonotonicInstant, into effects: inout [Effect]) {
        nextProbeAt = now + scaled(configuration.probeIntervalMilliseconds)
        guard let targetID = nextProbeTarget(), let index = position(of: targetID) else { return }
        let target = records[index].member
        let sequenceNumber = takeSequenceNumber()
        // Lifeguard §4.4 buddy system: a suspect learns of the suspicion from the ping itself, so it
        // can refute at once rather than waiting for gossip to reach it.
        var notice: Gossip?
        if target.status == .suspect {
            notice = .suspect(target.id, incarnation: target.incarnation, from: localMember.id)
        }
        let ping = datagram(.ping(Ping(sequenceNumber: sequenceNumber, targetID: target.id)), first: notice)
        effects.append(.send(ping, to: target.address))
        probe = ProbeState(sequenceNumber: sequenceNumber, targetID: target.id,
                           timeoutAt: now + scaled(configuration.probeTimeoutMilliseconds),
                           endAt: nextProbeAt)
    }

    /// SWIM §3.1: without a direct ack in time, "Mi selects k members at random and sends each a
    /// ping-req(Mj) message". Lifeguard §4.1: each is asked for a nack.
    mutating func sendIndirectProbes(_ current: inout ProbeState, into effects: inout [Effect]) {
        current.indirectSent = true
        guard let targetIndex = position(of: current.targetID) else { return }
        let targetAddress = records[targetIndex].member.address
        let targetID = current.targetID
        let helpers = randomIndices(count: configuration.indirectChecks) {
            $0.member.status == .alive && $0.member.id != targetID
        }
        for index in helpers {
            let request = PingRequest(sequenceNumber: current.sequenceNumber, targetID: targetID,
                                      targetAddress: targetAddress, wantsNack: true)
            effects.append(.send(datagram(.pingRequest(request)), to: records[index].member.address))
        }
        current.expectedNacks = helpers.count
    }

    /// The end of a protocol period without an ack: adjust local health and suspect the target.
    mutating func finishProbe(_ finished: ProbeState, now: MonotonicInstant, into effects: inout [Effect]) {
        guard !finished.acked else { return }
        // Lifeguard §4.2 (as memberlist applies it): with helpers, each missing nack means our own
        // network or process is the likelier culprit; without helpers, any failed probe counts.
        if finished.expectedNacks > 0 {
            applyAwareness(delta: max(0, finished.expectedNacks - finished.nacksReceived))
        } else {
            applyAwareness(delta: 1)
        }
        guard let index = position(of: finished.targetID) else { return }
        let target = records[index].member
        guard target.status.isActive else { return }
        // SWIM §4.2: no ack, direct or indirect, so the prober "marks Mj as a suspected member".
        apply(.suspect(target.id, incarnation: target.incarnation, from: localMember.id), now: now, into: &effects)
    }

    /// `notice` goes first in the ack (see `deathNotice(for:)`).
    mutating func handlePing(_ ping: Ping, from address: MemberAddress, notice: Gossip?, into effects: inout [Effect]) {
        // A ping for a different machine (our address was reused): stay silent, so the prober
        // does not take our ack for the other machine's.
        guard ping.targetID == localMember.id else { return }
        effects.append(.send(datagram(.ack(Ack(sequenceNumber: ping.sequenceNumber)), first: notice), to: address))
    }

    /// Lifeguard's buddy system turned around: a ping from a member we hold dead means it is back
    /// (a healed partition: we declared it dead, it never heard). Our ack tells it of its death,
    /// so it refutes at once instead of waiting for the next push-pull or reconnect (up to 30 s
    /// each with LAN defaults; the slow rejoins in RESULTS.md "where a slow rejoin comes from").
    /// Not in SWIM or memberlist, whose pings then get a plain ack. The sender is known by the
    /// suspect notice it attaches about us (the buddy system), or else by its address among the
    /// `deadAddressesScannedMax` most recently dead; gossip relayed from others does not count, as
    /// it may be older than the death.
    func deathNotice(for message: MembershipMessage, from address: MemberAddress) -> Gossip? {
        guard case .ping(let ping) = message.body, ping.targetID == localMember.id else { return nil }
        for entry in message.gossip {
            guard case .suspect(let id, _, let from) = entry, id == localMember.id,
                  let index = position(of: from), records[index].member.status == .dead else { continue }
            return .dead(from, incarnation: records[index].member.incarnation, from: localMember.id)
        }
        var scanned = 0
        var cursor = deadIDs.count
        while cursor > deadIDsStart && scanned < Self.deadAddressesScannedMax {
            cursor -= 1
            scanned += 1
            guard let index = position(of: deadIDs[cursor]), records[index].member.status == .dead,
                  records[index].member.address == address else { continue }
            return .dead(records[index].member.id, incarnation: records[index].member.incarnation, from: localMember.id)
        }
        return nil
    }

    /// Bounds the per-ping cost of recognising a dead member by its address (a mass death leaves
    /// many retained; the ones that come back soonest are the most recently dead).
    static let deadAddressesScannedMax = 64

    mutating func handlePingRequest(_ request: PingRequest, from address: MemberAddress, now: MonotonicInstant,
                                    into effects: inout [Effect]) {
        // Bounded: beyond this we drop the request, and the prober counts a missed nack.
        guard relays.count < configuration.indirectProbesInFlightMax, request.targetID != localMember.id else { return }
        let sequenceNumber = takeSequenceNumber()
        let ping = datagram(.ping(Ping(sequenceNumber: sequenceNumber, targetID: request.targetID)))
        effects.append(.send(ping, to: request.targetAddress))
        // Lifeguard §4.1: nack after 80 % of the probe timeout, so it reaches the prober before
        // the prober's own protocol period ends.
        let nackAfter = configuration.probeTimeoutMilliseconds * Int64(configuration.nackTimeoutPercent) / 100
        relays.append(Relay(sequenceNumber: sequenceNumber, origin: address,
                            originSequenceNumber: request.sequenceNumber, wantsNack: request.wantsNack,
                            nackAt: now + nackAfter, expireAt: now + configuration.probeIntervalMilliseconds))
    }

    mutating func handleAck(_ ack: Ack, now: MonotonicInstant, into effects: inout [Effect]) {
        if let position = identityProbes.firstIndex(where: { $0.sequenceNumber == ack.sequenceNumber }) {
            let answered = identityProbes.remove(at: position)
            if now < answered.giveUpAt, identityClash == nil { identityClash = answered.address }
            return
        }
        if var current = probe, current.sequenceNumber == ack.sequenceNumber {
            if !current.acked {
                current.acked = true
                // Lifeguard §4.2: a successful probe lowers the multiplier.
                applyAwareness(delta: -1)
            }
            probe = current
            return
        }
        if let position = relays.firstIndex(where: { $0.sequenceNumber == ack.sequenceNumber }) {
            let relay = relays.remove(at: position)
            let forwarded = datagram(.ack(Ack(sequenceNumber: relay.originSequenceNumber)))
            effects.append(.send(forwarded, to: relay.origin))
        }
    }

    mutating func handleNack(_ nack: Nack) {
        guard var current = probe, current.sequenceNumber == nack.sequenceNumber else { return }
        // Never more than we asked for: a duplicated nack must not hide a missing one.
        current.nacksReceived = min(current.nacksReceived + 1, current.expectedNacks)
        probe = current
    }

    mutating func runRelayTimers(now: MonotonicInstant, into effects: inout [Effect]) {
        guard !relays.isEmpty else { return }
        for position in relays.indices where relays[position].wantsNack && !relays[position].nackSent
            && now >= relays[position].nackAt {
            relays[position].nackSent = true
            let nack = datagram(.nack(Nack(sequenceNumber: relays[position].originSequenceNumber)))
            effects.append(.send(nack, to: relays[position].origin))
        }
        relays.removeAll { now >= $0.expireAt }
    }
}

/// A ping naming our own ID, sent to another address that announced it.
struct IdentityProbe: Hashable, Sendable {
    let sequenceNumber: UInt32
    let address: MemberAddress
    var resendAt: MonotonicInstant
    let giveUpAt: MonotonicInstant
}

extension MembershipInstance {
    static let identityProbesMax = 4
    /// How many times one probe's ping is sent, a probe timeout apart, before the address counts
    /// as silent. One ping was not enough: with the machines busy (a full test run on two cores)
    /// the clone's ack came after the first timeout, the new machine started unchecked and the
    /// clash showed only a second later, when both were already running.
    public static let identityProbeSends = 4

    /// Someone announced our ID from another address. Either it is an earlier life of this machine
    /// (restarted with a new address; nothing answers there any more, or a different machine
    /// that stays silent to a ping naming another ID) or a second live machine with our machine
    /// ID, which answers a ping for that ID like we would: that is the clash memberlist reports
    /// as a conflict and fleet refused at start-up (its functional test TestDetectMachineId).
    /// One probe per address in flight, its ping resent every probe timeout up to
    /// `identityProbeSends` times (a lost datagram or a slow answer is not silence); an ack of any
    /// of them counts until the last one's timeout.
    mutating func probeIdentity(at address: MemberAddress, now: MonotonicInstant, into effects: inout [Effect]) {
        guard identityClash == nil, identityProbes.count < Self.identityProbesMax,
              !identityProbes.contains(where: { $0.address == address }) else { return }
        let sequenceNumber = takeSequenceNumber()
        let timeout = configuration.probeTimeoutMilliseconds
        let probe = IdentityProbe(sequenceNumber: sequenceNumber, address: address, resendAt: now + timeout,
                                  giveUpAt: now + timeout * Int64(Self.identityProbeSends))
        identityProbes.append(probe)
        effects.append(.send(identityPing(probe), to: address))
    }

    mutating func identityPing(_ probe: IdentityProbe) -> MembershipMessage {
        datagram(.ping(Ping(sequenceNumber: probe.sequenceNumber, targetID: localMember.id)))
    }

    /// Drops the probes whose last ping went unanswered and resends the others' when due.
    mutating func runIdentityProbeTimers(now: MonotonicInstant, into effects: inout [Effect]) {
        guard !identityProbes.isEmpty else { return }
        identityProbes.removeAll { now >= $0.giveUpAt }
        for position in identityProbes.indices where now >= identityProbes[position].resendAt {
            identityProbes[position].resendAt = now + configuration.probeTimeoutMilliseconds
            let probe = identityProbes[position]
            effects.append(.send(identityPing(probe), to: probe.address))
        }
    }

    /// Whether an identity probe waits for its ack.
    public var hasIdentityProbesInFlight: Bool { !identityProbes.isEmpty }

    /// Whether the join has finished: a seed answered (or there were none to ask).
    public var hasJoined: Bool { joinRetryAt == nil }
}
