// Dissemination and anti-entropy: memberlist's gossip ticker, push-pull, join and reconnect.

extension MembershipInstance {
    /// memberlist's gossip: every gossip interval, pending broadcasts go to `gossipNodes` random
    /// members (each gets its own batch, each counted as a transmission). Recently dead members
    /// are included (memberlist's GossipToTheDeadTime), so a member that was only cut off learns
    /// of its death and refutes it.
    mutating func gossipIfDue(now: MonotonicInstant, into effects: inout [Effect]) {
        guard now >= nextGossipAt else { return }
        nextGossipAt = now + configuration.gossipIntervalMilliseconds
        guard !broadcasts.isEmpty else { return }
        let deadWindow = configuration.gossipToTheDeadMilliseconds
        let targets = randomIndices(count: configuration.gossipNodes) {
            $0.member.status.isActive
                || ($0.member.status == .dead && now.milliseconds(since: $0.stateChangedAt) <= deadWindow)
        }
        for index in targets {
            let message = datagram(.gossip)
            guard !message.gossip.isEmpty else { break }
            effects.append(.send(message, to: records[index].member.address))
        }
    }

    /// The whole table, ourselves first, for push-pull.
    func fullState() -> [Member] {
        var state = [localMember]
        state.reserveCapacity(records.count + 1)
        for record in records { state.append(record.member) }
        return state
    }

    /// memberlist's periodic push-pull with one random live member: a full-state exchange that
    /// repairs whatever gossip lost (dropped broadcasts, members that joined during a partition).
    mutating func pushPullIfDue(now: MonotonicInstant, into effects: inout [Effect]) {
        guard !isLeaving, now >= nextPushPullAt else { return }
        nextPushPullAt = now + configuration.pushPullIntervalMilliseconds(memberCount: memberCount)
        guard let index = randomIndices(count: 1, where: { $0.member.status == .alive }).first else { return }
        effects.append(.send(MembershipMessage(.pushPull(PushPull(kind: .request, members: fullState()))),
                             to: records[index].member.address))
    }

    /// Serf's reconnect, in the core: a push-pull with one random retained dead member. If it was
    /// only partitioned away, the exchange tells each side the other is alive and the refutations
    /// spread from there.
    ///
    /// Deviation from Serf (whose reconnect is only periodic): while no other member is alive
    /// here (all suspect or dead), we are most likely the cut-off side of a partition (or the last
    /// survivor). Nothing else brings the others back soon: they hold us dead and neither probe us
    /// nor, after `gossipToTheDeadMilliseconds`, gossip to us, and our own probes, slowed by our
    /// local health multiplier, reach only the members still suspect here. So the attempt is made
    /// every probe interval, toward a random suspect or dead member; its answer carries our death
    /// certificate, which we refute. Bounded: one push-pull per probe interval, only in that
    /// state; a last survivor pays one failed connection per probe interval until its dead are
    /// forgotten.
    mutating func reconnectIfDue(now: MonotonicInstant, into effects: inout [Effect]) {
        guard !isLeaving, now >= reconnectDueAt else { return }
        let cutOff = isCutOff
        lastReconnectAt = now
        if now >= nextReconnectAt { nextReconnectAt = now + configuration.reconnectIntervalMilliseconds }
        var candidates = deadIDs[deadIDsStart...]
        if cutOff && candidates.isEmpty { candidates = suspectIDs[...] }
        guard !candidates.isEmpty else { return }
        for _ in 0..<8 {
            let id = candidates[candidates.startIndex + random.below(candidates.count)]
            if let index = position(of: id), records[index].member.status == .dead
                || (cutOff && records[index].member.status == .suspect) {
                effects.append(.send(MembershipMessage(.pushPull(PushPull(kind: .request, members: fullState()))),
                                     to: records[index].member.address))
                return
            }
        }
    }

    /// No other member is alive here, and at least one is suspect or retained dead.
    var isCutOff: Bool {
        assert(suspicions.count <= activeOtherCount, "\(suspicions.count) suspicions, \(activeOtherCount) active")
        return activeOtherCount == suspicions.count && (!suspicions.isEmpty || deadIDs.count > deadIDsStart)
    }

    /// The periodic reconnect, or while cut off a probe interval after the last attempt.
    var reconnectDueAt: MonotonicInstant {
        guard isCutOff else { return nextReconnectAt }
        return min(nextReconnectAt, lastReconnectAt + configuration.probeIntervalMilliseconds)
    }

    mutating func retryJoinIfDue(now: MonotonicInstant, into effects: inout [Effect]) {
        guard let retryAt = joinRetryAt, now >= retryAt else { return }
        joinRetryAt = now + configuration.joinRetryIntervalMilliseconds
        let message = MembershipMessage(.pushPull(PushPull(kind: .join, members: fullState())))
        for seed in joinSeeds { effects.append(.send(message, to: seed)) }
    }

    mutating func handlePushPull(_ pushPull: PushPull, from address: MemberAddress, now: MonotonicInstant,
                                 into effects: inout [Effect]) {
        // Bounded like the table itself: a larger state is not from a peer we can hold anyway.
        guard pushPull.members.count <= configuration.membersMax + 1 else { return }
        merge(pushPull.members, now: now, into: &effects)
        if pushPull.kind != .response {
            // Deviation from memberlist, which answers before merging: answering after merging
            // carries any refutation the request provoked (we were dead on the requester's side
            // of a partition) straight back to the requester, so a healed partition merges in one
            // exchange instead of waiting for gossip to cross it.
            effects.append(.send(MembershipMessage(.pushPull(PushPull(kind: .response, members: fullState()))),
                                 to: address))
        } else if joinRetryAt != nil {
            joinRetryAt = nil
            joinSeeds = []
        }
    }

    /// memberlist's mergeState: alive as alive, left as left, but suspect *and dead* as suspect
    /// from us: "if the remote node believes a node is dead, we prefer to suspect that node
    /// instead of declaring it dead instantly", giving it the chance to refute.
    mutating func merge(_ remote: [Member], now: MonotonicInstant, into effects: inout [Effect]) {
        for member in remote {
            switch member.status {
            case .alive:
                applyAlive(member, now: now, into: &effects)
            case .suspect, .dead:
                applySuspect(member.id, member.incarnation, from: localMember.id, now: now, into: &effects)
            case .left:
                applyDead(member.id, member.incarnation, from: member.id, now: now, into: &effects)
            }
        }
    }
}
