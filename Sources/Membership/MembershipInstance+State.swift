// Applying membership updates: SWIM §4.2's override rules, refutation, suspicion timers.
//
// SWIM §4.2 orders updates about a member Ml by incarnation:
//   {Alive Ml, inc=i} overrides {Suspect Ml, inc=j}, i > j, and {Alive Ml, inc=j}, i > j;
//   {Suspect Ml, inc=i} overrides {Suspect Ml, inc=j}, i > j, and {Alive Ml, inc=j}, i ≥ j;
//   {Confirm Ml, inc=i} overrides {Alive Ml, inc=j} and {Suspect Ml, inc=j}, any j.
// Deviation (memberlist): a Confirm (dead) with an incarnation below ours is ignored, so a
// member that refuted, or restarted and rejoined with a higher incarnation, is not killed by a
// stale death certificate still in flight.

extension MembershipInstance {
    mutating func apply(_ gossip: Gossip, now: MonotonicInstant, into effects: inout [Effect]) {
        switch gossip {
        case .alive(let member): applyAlive(member, now: now, into: &effects)
        case .suspect(let id, let incarnation, let from): applySuspect(id, incarnation, from: from, now: now, into: &effects)
        case .dead(let id, let incarnation, let from): applyDead(id, incarnation, from: from, now: now, into: &effects)
        }
    }

    mutating func applyAlive(_ announced: Member, now: MonotonicInstant, into effects: inout [Effect]) {
        if announced.id == localMember.id {
            // Someone holds a newer or different picture of us (a previous life of this machine,
            // or a stale address): take an incarnation above it and re-announce ourselves.
            if announced.incarnation > localMember.incarnation
                || (announced.incarnation == localMember.incarnation && !announced.hasSameData(as: localMember)) {
                refute(accusedIncarnation: announced.incarnation)
            }
            if announced.address != localMember.address { probeIdentity(at: announced.address, now: now, into: &effects) }
            return
        }
        // Bad data from outside is dropped, never trusted: it must fit our bounds.
        guard MembershipCodec.encodedBytes(of: announced.metadata) <= configuration.metadataBytesMax,
              announced.version.utf8.count <= Member.versionBytesMax else { return }
        var member = announced
        member.status = .alive
        guard let index = position(of: member.id) else {
            guard makeRoom() else { return }
            insert(MemberRecord(member: member, stateChangedAt: now))
            broadcasts.enqueue(.alive(member))
            effects.append(.memberChanged(MemberChange(member: member, previousStatus: nil)))
            return
        }
        let known = records[index].member
        // SWIM: alive overrides alive or suspect only with a strictly higher incarnation. The same
        // holds for dead and left: coming back takes a new incarnation (a restart refutes).
        guard member.incarnation > known.incarnation else { return }
        setState(of: index, to: member, now: now)
        broadcasts.enqueue(.alive(member))
        effects.append(.memberChanged(MemberChange(member: member, previousStatus: known.status)))
    }

    mutating func applySuspect(_ id: MemberID, _ incarnation: Incarnation, from: MemberID,
                               now: MonotonicInstant, into effects: inout [Effect]) {
        if id == localMember.id {
            // SWIM §4.2: "Mj ... when it receives a suspect message about itself, increments its
            // incarnation number and disseminates an alive message". We said goodbye: stay quiet.
            if !isLeaving && incarnation >= localMember.incarnation {
                refute(accusedIncarnation: incarnation)
            } else if !isLeaving {
                reannounceOverStaleAccusation()
            }
            return
        }
        guard let index = position(of: id) else { return }
        let known = records[index].member
        guard known.status.isActive, incarnation >= known.incarnation else { return }
        if known.status == .suspect, incarnation == known.incarnation {
            // Lifeguard §4.3: an independent confirmation shortens the timer; only news is re-gossiped.
            if suspicions[id]?.confirm(from: from) == true {
                broadcasts.enqueue(.suspect(id, incarnation: incarnation, from: from))
            }
            return
        }
        var member = known
        member.status = .suspect
        member.incarnation = incarnation
        setState(of: index, to: member, now: now)
        suspicions[id] = makeSuspicion(incarnation: incarnation, from: from, now: now)
        suspectIDs.append(id)
        broadcasts.enqueue(.suspect(id, incarnation: incarnation, from: from))
        if known.status != .suspect {
            effects.append(.memberChanged(MemberChange(member: member, previousStatus: known.status)))
        }
    }

    mutating func applyDead(_ id: MemberID, _ incarnation: Incarnation, from: MemberID,
                            now: MonotonicInstant, into effects: inout [Effect]) {
        if id == localMember.id {
            // Our own goodbye echoing back while we leave is fine. Any verdict while we are not
            // leaving is refuted, our own goodbye included: it is from an earlier life of this
            // machine (a clean reboot leaves the pool), and unrefuted it kept the machine out of
            // the member list for good after it came back (seen on the test bed).
            if !isLeaving && incarnation >= localMember.incarnation {
                refute(accusedIncarnation: incarnation)
            } else if !isLeaving {
                reannounceOverStaleAccusation()
            }
            return
        }
        guard let index = position(of: id) else { return }
        let known = records[index].member
        guard known.status.isActive, incarnation >= known.incarnation else { return }
        var member = known
        member.status = from == id ? .left : .dead
        member.incarnation = incarnation
        setState(of: index, to: member, now: now)
        broadcasts.enqueue(.dead(id, incarnation: incarnation, from: from))
        effects.append(.memberChanged(MemberChange(member: member, previousStatus: known.status)))
    }

    /// SWIM §4.2 refutation, plus Lifeguard §4.2: having to refute means others could not hear us
    /// in time, a sign our own health is poor, so the local health multiplier rises.
    mutating func refute(accusedIncarnation: Incarnation) {
        localMember.incarnation = max(localMember.incarnation, accusedIncarnation) + 1
        localMember.status = .alive
        broadcasts.enqueue(.alive(localMember))
        applyAwareness(delta: 1)
    }

    /// A suspicion or death of us at an incarnation below ours is stale: we refuted it already,
    /// but whoever still spreads it (or holds us dead, as a member cut off until our refutation
    /// had run out of retransmissions does) never heard. SWIM and memberlist ignore it; we put our
    /// current alive back in the queue (without a new incarnation) unless it is still pending,
    /// so it reaches the stale holder. Seen in the simulation: after a healed partition the
    /// cut-off member held one of the others dead at an old incarnation for up to 30 s, until a
    /// push-pull, while the death notices it sent that member were ignored as stale. Bounded by
    /// the queue: one entry per member, and only while none is pending.
    mutating func reannounceOverStaleAccusation() {
        guard broadcasts.pending(about: localMember.id) == nil else { return }
        broadcasts.enqueue(.alive(localMember))
    }

    /// Lifeguard §4.3 with memberlist's parameters: k = suspicionMultiplier − 2 confirmations
    /// expected (none in groups too small to supply them), min from the group size, max = min ×
    /// suspicionMaxTimeoutMultiplier.
    func makeSuspicion(incarnation: Incarnation, from: MemberID, now: MonotonicInstant) -> Suspicion {
        var expected = configuration.suspicionMultiplier - 2
        if memberCount - 2 < expected { expected = 0 }
        let minTimeout = configuration.suspicionTimeoutMinMilliseconds(memberCount: memberCount)
        return Suspicion(incarnation: incarnation, from: from, startedAt: now, expectedConfirmations: max(0, expected),
                         minTimeoutMilliseconds: minTimeout,
                         maxTimeoutMilliseconds: minTimeout * Int64(configuration.suspicionMaxTimeoutMultiplier))
    }

    /// Records a new state for a member and keeps the counters and side lists in step.
    mutating func setState(of index: Int, to member: Member, now: MonotonicInstant) {
        let before = records[index].member.status
        if before.isActive != member.status.isActive { activeOtherCount += member.status.isActive ? 1 : -1 }
        if before != member.status {
            records[index].stateChangedAt = now
            if !member.status.isActive { deadIDs.append(member.id) }
        }
        if before == .suspect && member.status != .suspect { suspicions[member.id] = nil }
        if !before.isActive && member.status.isActive { appendToProbeOrder(member.id) }
        records[index].member = member
    }

    mutating func insert(_ record: MemberRecord) {
        records.append(record)
        memberIndex.insert(position: records.count - 1, in: records)
        if record.member.status.isActive {
            activeOtherCount += 1
            appendToProbeOrder(record.member.id)
        } else {
            deadIDs.append(record.member.id)
        }
    }

    /// SWIM §4.3: "newly joined members are inserted in the membership list at random positions",
    /// here among the members not yet probed this round (O(1): swap with a random later slot).
    mutating func appendToProbeOrder(_ id: MemberID) {
        probeOrder.append(id)
        let unprobed = probeOrder.count - probeIndex
        if unprobed > 1 {
            probeOrder.swapAt(probeOrder.count - 1, probeIndex + random.below(unprobed))
        }
    }

    /// Room for one more member: forget the longest-dead one if the table is full.
    mutating func makeRoom() -> Bool {
        if records.count < configuration.membersMax { return true }
        while deadIDsStart < deadIDs.count {
            let id = deadIDs[deadIDsStart]
            deadIDsStart += 1
            if let index = position(of: id), !records[index].member.status.isActive {
                remove(at: index)
                return true
            }
        }
        return false
    }

    mutating func remove(at index: Int) {
        let record = records[index]
        if record.member.status.isActive { activeOtherCount -= 1 }
        if record.member.status == .suspect { suspicions[record.member.id] = nil }
        memberIndex.remove(position: index, in: records)
        let last = records.count - 1
        if index != last {
            memberIndex.move(records[last].member.id, from: last, to: index)
            records.swapAt(index, last)
        }
        records.removeLast()
    }

    // MARK: Timers on state

    /// Lifeguard §4.3: a suspicion that runs out becomes a death (SWIM's Confirm), gossiped.
    mutating func expireSuspicions(now: MonotonicInstant, into effects: inout [Effect]) {
        guard !suspectIDs.isEmpty else { return }
        var stillSuspect: [MemberID] = []
        var expired: [(MemberID, Incarnation)] = []
        for id in suspectIDs {
            guard let index = position(of: id), records[index].member.status == .suspect,
                  let suspicion = suspicions[id] else { continue }
            if stillSuspect.contains(id) || expired.contains(where: { $0.0 == id }) { continue }
            if now >= suspicion.deadline {
                expired.append((id, suspicion.incarnation))
            } else {
                stillSuspect.append(id)
            }
        }
        suspectIDs = stillSuspect
        for (id, incarnation) in expired {
            applyDead(id, incarnation, from: localMember.id, now: now, into: &effects)
        }
    }

    /// When the oldest retained dead member is due to be forgotten.
    var nextForgetAt: MonotonicInstant? {
        var position = deadIDsStart
        while position < deadIDs.count {
            if let index = self.position(of: deadIDs[position]), !records[index].member.status.isActive {
                return records[index].stateChangedAt + configuration.deadRetentionMilliseconds
            }
            position += 1
        }
        return nil
    }

    mutating func forgetExpiredDead(now: MonotonicInstant, into effects: inout [Effect]) {
        while deadIDsStart < deadIDs.count {
            let id = deadIDs[deadIDsStart]
            guard let index = position(of: id), !records[index].member.status.isActive else {
                deadIDsStart += 1 // came back to life, or already forgotten
                continue
            }
            // The retention counts from the latest death; an entry left from an earlier death (the
            // member revived and died again) only delays the ones behind it a little.
            guard now >= records[index].stateChangedAt + configuration.deadRetentionMilliseconds else { break }
            deadIDsStart += 1
            remove(at: index)
            effects.append(.memberForgotten(id))
        }
        if deadIDsStart > 1024 && deadIDsStart * 2 > deadIDs.count {
            deadIDs.removeFirst(deadIDsStart)
            deadIDsStart = 0
        }
    }
}
