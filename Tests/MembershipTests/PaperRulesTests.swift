import TestSupport
import Membership
import Testing

/// SWIM (Das, Gupta, Motivala 2002) and Lifeguard (Dadgar, Phillips, Currey 2017) rules, each test
/// quoting the sentence it checks.
@Suite(.onBackgroundThreads) struct PaperRulesTests {
    // SWIM §4.2: "{Alive Ml, inc=i} overrides {Suspect Ml, inc=j}, i > j".
    @Test func aliveOverridesSuspectOnlyWithHigherIncarnation() {
        var a = makeInstanceKnowing(5)
        _ = a.receive(.suspect(memberID(2), incarnation: 0, from: memberID(3)))
        #expect(a.member(memberID(2))?.status == .suspect)
        _ = a.receive(.alive(makeMember(2, incarnation: 0)))
        #expect(a.member(memberID(2))?.status == .suspect, "same incarnation must not clear a suspicion")
        let changes = a.receive(.alive(makeMember(2, incarnation: 1))).changes
        #expect(a.member(memberID(2))?.status == .alive)
        #expect(changes == [MemberChange(member: makeMember(2, incarnation: 1), previousStatus: .suspect)])
    }

    // SWIM §4.2: "{Suspect Ml, inc=i} overrides ... {Alive Ml, inc=j}, i ≥ j".
    @Test func suspectOverridesAliveWithSameOrHigherIncarnationOnly() {
        var a = makeInstanceKnowing(5)
        _ = a.receive(.alive(makeMember(2, incarnation: 3)))
        _ = a.receive(.suspect(memberID(2), incarnation: 2, from: memberID(3)))
        #expect(a.member(memberID(2))?.status == .alive, "a stale suspicion is ignored")
        _ = a.receive(.suspect(memberID(2), incarnation: 3, from: memberID(3)))
        #expect(a.member(memberID(2))?.status == .suspect)
    }

    // SWIM §4.2: "{Suspect Ml, inc=i} overrides {Suspect Ml, inc=j}, i > j".
    @Test func suspectWithHigherIncarnationRestartsTheSuspicion() {
        var a = makeInstanceKnowing(5)
        _ = a.receive(.suspect(memberID(2), incarnation: 0, from: memberID(3)), now: ms(0))
        _ = a.receive(.suspect(memberID(2), incarnation: 1, from: memberID(3)), now: ms(5_000))
        #expect(a.member(memberID(2))?.incarnation == 1)
        let restarted = a.suspicionDeadline(of: memberID(2))
        #expect(restarted != nil && restarted! > ms(5_000 + 12_000))
    }

    // SWIM §4.2: "{Confirm Ml, inc=i} overrides {Alive Ml, inc=j} ... any j" — with memberlist's
    // deviation that a death below the known incarnation is stale and ignored.
    @Test func deadOverridesAliveAndSuspectButNotAHigherIncarnation() {
        var a = makeInstanceKnowing(5)
        _ = a.receive(.dead(memberID(2), incarnation: 0, from: memberID(3)))
        #expect(a.member(memberID(2))?.status == .dead)
        _ = a.receive(.suspect(memberID(3), incarnation: 0, from: memberID(4)))
        _ = a.receive(.dead(memberID(3), incarnation: 0, from: memberID(4)))
        #expect(a.member(memberID(3))?.status == .dead)
        _ = a.receive(.alive(makeMember(4, incarnation: 2)))
        _ = a.receive(.dead(memberID(4), incarnation: 1, from: memberID(5)))
        #expect(a.member(memberID(4))?.status == .alive, "a death certificate older than a refutation is ignored")
    }

    // SWIM §4.2: a suspected member "increments its incarnation number and disseminates an alive
    // message" on learning of the suspicion. Lifeguard §4.2: refuting raises the local health multiplier.
    @Test func refutesSuspicionWithHigherIncarnation() {
        var a = makeInstanceKnowing(5)
        _ = a.receive(.suspect(memberID(1), incarnation: 0, from: memberID(3)))
        #expect(a.localMember.incarnation == 1)
        #expect(a.localHealthMultiplier == 1)
        let reply = a.onMessage(MembershipMessage(.ping(Ping(sequenceNumber: 7, targetID: memberID(1)))),
                                from: address(3), now: ms(1))
        let ack = reply.sent.first!.0
        #expect(ack.body == .ack(Ack(sequenceNumber: 7)))
        #expect(ack.gossip.contains(.alive(a.localMember)))
        // A second suspicion at the old incarnation is stale and needs no refutation.
        _ = a.receive(.suspect(memberID(1), incarnation: 0, from: memberID(4)))
        #expect(a.localMember.incarnation == 1)
    }

    // Not in SWIM: a stale accusation (below our incarnation) is not refuted again, but our
    // current alive goes back into the queue so whoever still holds the stale view hears it.
    @Test func staleAccusationPutsOurCurrentAliveBackInTheQueue() {
        var a = makeInstanceKnowing(3, seed: 2, incarnation: 2)
        // Drain the queue (the join-time announcements) by sending enough gossip.
        for step in 0..<40 { _ = a.run(until: ms(Int64(step) * 200)) }
        #expect(a.pendingBroadcastCount == 0)
        _ = a.receive(.dead(memberID(1), incarnation: 1, from: memberID(2)), now: ms(9_000))
        #expect(a.localMember.incarnation == 2, "a stale death is not refuted with a new incarnation")
        #expect(a.pendingBroadcastCount == 1)
        let sent = a.run(until: ms(9_400)).sent
        #expect(sent.contains { $0.0.gossip.contains(.alive(a.localMember)) })
        // The same for a stale suspicion.
        var b = makeInstanceKnowing(3, seed: 3, incarnation: 2)
        for step in 0..<40 { _ = b.run(until: ms(Int64(step) * 200)) }
        _ = b.receive(.suspect(memberID(1), incarnation: 0, from: memberID(2)), now: ms(9_000))
        #expect(b.localMember.incarnation == 2 && b.pendingBroadcastCount == 1)
    }

    @Test func refutesDeathDeclaredByOthers() {
        var a = makeInstanceKnowing(3, seed: 2)
        _ = a.receive(.dead(memberID(1), incarnation: 0, from: memberID(2)))
        #expect(a.localMember.incarnation == 1 && a.localMember.status == .alive)
    }

    // SWIM §4.2: the suspect is "declared as faulty" after a timeout; Lifeguard §4.3 sets it from
    // the group size: min = 4 × log10(N) × 1 s, starting at 6 × min without confirmations.
    @Test func suspectBecomesDeadAfterTimeout() {
        var a = makeInstanceKnowing(10)
        _ = a.receive(.suspect(memberID(2), incarnation: 0, from: memberID(3)), now: ms(100))
        // N = 10: min = 4 × 1 × 1000 = 4 s, max = 24 s; k = 2 confirmations expected.
        #expect(a.suspicionDeadline(of: memberID(2)) == ms(100 + 24_000))
        var before = a
        let early = before.onTick(now: ms(100 + 23_999))
        #expect(early.changes.allSatisfy { $0.member.id != memberID(2) })
        #expect(before.member(memberID(2))?.status == .suspect)
        let due = a.onTick(now: ms(100 + 24_000))
        #expect(a.member(memberID(2))?.status == .dead)
        #expect(due.changes.contains { $0.member.id == memberID(2) && $0.member.status == .dead && $0.previousStatus == .suspect })
        // The death is gossiped (SWIM's Confirm message).
        let later = a.run(until: ms(26_000)).sent.flatMap { $0.0.gossip }
        #expect(later.contains(.dead(memberID(2), incarnation: 0, from: memberID(1))))
    }

    // Lifeguard §4.3: "the suspicion timeout ... is reduced as the member receives independent
    // suspicions", logarithmically, reaching the minimum after k confirmations.
    @Test func suspicionTimeoutShrinksWithConfirmations() {
        var a = makeInstanceKnowing(10)
        _ = a.receive(.suspect(memberID(2), incarnation: 0, from: memberID(3)), now: ms(0))
        let start = a.suspicionDeadline(of: memberID(2))!
        _ = a.receive(.suspect(memberID(2), incarnation: 0, from: memberID(3)), now: ms(10))
        #expect(a.suspicionDeadline(of: memberID(2)) == start, "the same suspecter does not count twice")
        _ = a.receive(.suspect(memberID(2), incarnation: 0, from: memberID(4)), now: ms(20))
        let once = a.suspicionDeadline(of: memberID(2))!
        // max − log(2)/log(3) × (max − min) = 24000 − 0.6309 × 20000 ≈ 11381 ms.
        #expect(once == ms(11_381))
        _ = a.receive(.suspect(memberID(2), incarnation: 0, from: memberID(5)), now: ms(30))
        #expect(a.suspicionDeadline(of: memberID(2)) == ms(4_000), "k = 2 confirmations reach the minimum")
        _ = a.receive(.suspect(memberID(2), incarnation: 0, from: memberID(6)), now: ms(40))
        #expect(a.suspicionDeadline(of: memberID(2)) == ms(4_000))
    }

    // Lifeguard §4.2: the LHM rises when "a probe ... fails" with missing nacks and falls
    // "on a successful probe"; probe interval and timeout are scaled by LHM + 1.
    @Test func localHealthRisesOnMissedNackAndFallsOnSuccess() {
        var a = makeInstanceKnowing(6)
        // The first probe: a ping goes out at t0.
        let (t0, ping, target) = a.tickUntilPing()
        // No ack within the 500 ms probe timeout: three ping-reqs asking for nacks.
        let requests = a.run(until: t0 + 500).sent.compactMap { $0.0.pingRequest }
        #expect(requests.count == 3 && requests.allSatisfy { $0.wantsNack && $0.sequenceNumber == ping && $0.targetID == target })
        _ = a.onMessage(MembershipMessage(.nack(Nack(sequenceNumber: ping))), from: address(3), now: t0 + 700)
        _ = a.onMessage(MembershipMessage(.nack(Nack(sequenceNumber: ping))), from: address(3), now: t0 + 701)
        #expect(a.localHealthMultiplier == 0)
        // At the end of the period (t0 + 1 s): one nack missed, so LHM = 1, and the target is suspect.
        let end = a.run(until: t0 + 1_000)
        #expect(a.localHealthMultiplier == 1)
        #expect(a.member(target)?.status == .suspect)
        // The next probe started at t0 + 1 s; its timeout is scaled by LHM + 1 = 2 (1 s, not 500 ms).
        let next = end.sent.first { $0.0.pingSequence != nil }!
        #expect(a.run(until: t0 + 1_999).sent.allSatisfy { $0.0.pingRequest == nil })
        _ = a.onMessage(MembershipMessage(.ack(Ack(sequenceNumber: next.0.pingSequence!))), from: next.1, now: t0 + 1_999)
        #expect(a.localHealthMultiplier == 0, "a successful probe lowers the multiplier")
    }

    @Test func localHealthRisesWithoutHelpersOnEveryFailedProbe() {
        var a = makeInstanceKnowing(2)
        _ = a.run(until: ms(1_000 + 999))
        #expect(a.localHealthMultiplier == 1)
    }

    // Lifeguard §4.1: an intermediary "sends a nack to the requesting member" when the target
    // has not answered in time.
    @Test func intermediarySendsNackWhenTargetIsSilentAndForwardsAck() {
        var b = makeInstanceKnowing(4)
        let request = PingRequest(sequenceNumber: 42, targetID: memberID(3), targetAddress: address(3), wantsNack: true)
        let out = b.onMessage(MembershipMessage(.pingRequest(request)), from: address(2), now: ms(0))
        let relayedPing = out.sent.first { $0.1 == address(3) }!
        #expect(relayedPing.0.pingSequence != nil)
        let later = b.run(until: ms(400))
        #expect(later.sent.contains { $0.0.body == .nack(Nack(sequenceNumber: 42)) && $0.1 == address(2) })
        // A late ack is still forwarded under the prober's sequence number.
        let forwarded = b.onMessage(MembershipMessage(.ack(Ack(sequenceNumber: relayedPing.0.pingSequence!))),
                                    from: address(3), now: ms(450))
        #expect(forwarded.sent.contains { $0.0.body == .ack(Ack(sequenceNumber: 42)) && $0.1 == address(2) })
    }

    // Lifeguard §4.4 buddy system: "piggyback the suspect message on the ping to the suspected member".
    @Test func buddySystemSendsTheSuspicionToTheSuspect() {
        var a = makeInstanceKnowing(2)
        _ = a.receive(.suspect(memberID(2), incarnation: 0, from: memberID(9)))
        let ping = a.run(until: ms(1_000)).sent.first { $0.0.pingSequence != nil }!
        #expect(ping.1 == address(2))
        #expect(ping.0.gossip.first == .suspect(memberID(2), incarnation: 0, from: memberID(1)))
    }

    // The buddy system turned around (not in the papers): a member we hold dead pings us, so it is
    // back from a partition; our ack carries its death notice first, and on receiving it the
    // member refutes. The sender is known by its suspicion of us, or by its address.
    @Test func ackTellsAPingingMemberWeHoldDeadOfItsDeath() {
        var a = makeInstanceKnowing(3)
        _ = a.receive(.dead(memberID(3), incarnation: 2, from: memberID(2)))
        let notice = Gossip.suspect(memberID(1), incarnation: 0, from: memberID(3))
        let ping = MembershipMessage(.ping(Ping(sequenceNumber: 5, targetID: memberID(1))), gossip: [notice])
        let answer = a.onMessage(ping, from: address(3), now: ms(10)).sent
        #expect(answer.count == 1 && answer[0].1 == address(3))
        #expect(answer[0].0.body == .ack(Ack(sequenceNumber: 5)))
        #expect(answer[0].0.gossip.first == .dead(memberID(3), incarnation: 2, from: memberID(1)))

        var back = makeInstanceKnowing(3, seed: 3)
        _ = back.onMessage(answer[0].0, from: address(1), now: ms(20))
        #expect(back.member(memberID(3)) != nil)
        var returning = makeInstance(3, seed: 4, incarnation: 2)
        _ = returning.onMessage(answer[0].0, from: address(1), now: ms(20))
        #expect(returning.localMember.incarnation == 3, "the returning member refutes its death")

        // Without a suspicion of us, the dead member is known by its address.
        let plain = a.onMessage(MembershipMessage(.ping(Ping(sequenceNumber: 6, targetID: memberID(1)))),
                                from: address(3), now: ms(30)).sent
        let ourNotice = Gossip.dead(memberID(3), incarnation: 2, from: memberID(1))
        #expect(plain[0].0.gossip.first == ourNotice)
        // A ping from a member we hold alive gets a plain ack, even with another's suspicion of us.
        let fromOther = a.onMessage(MembershipMessage(.ping(Ping(sequenceNumber: 8, targetID: memberID(1)))),
                                    from: address(2), now: ms(35)).sent
        #expect(!fromOther[0].0.gossip.contains(ourNotice))
        let fromAlive = a.onMessage(MembershipMessage(.ping(Ping(sequenceNumber: 7, targetID: memberID(1))),
                                                      gossip: [.suspect(memberID(1), incarnation: 1, from: memberID(2))]),
                                    from: address(2), now: ms(40)).sent
        #expect(!fromAlive[0].0.gossip.contains(ourNotice))
    }

    // SWIM §3.1: "If Mi receives the ack ... within the timeout, nothing happens".
    @Test func pingIsAckedOnlyForTheRightMachine() {
        var a = makeInstance()
        let wrong = a.onMessage(MembershipMessage(.ping(Ping(sequenceNumber: 1, targetID: memberID(7)))), from: address(2), now: .zero)
        #expect(wrong.sent.isEmpty)
        let right = a.onMessage(MembershipMessage(.ping(Ping(sequenceNumber: 1, targetID: memberID(1)))), from: address(2), now: .zero)
        #expect(right.sent.first?.0.body == .ack(Ack(sequenceNumber: 1)) && right.sent.first?.1 == address(2))
    }

    // SWIM §4.3: "each member selects ping targets in a round-robin fashion" — every member is
    // probed once per round.
    @Test func roundRobinProbesEveryMemberOncePerRound() {
        var a = makeInstanceKnowing(9)
        var targets: [MemberAddress] = []
        for _ in 0..<40 {
            let out = a.onTick(now: a.nextDeadline)
            for (message, to) in out.sent where message.pingSequence != nil {
                targets.append(to)
                _ = a.onMessage(MembershipMessage(.ack(Ack(sequenceNumber: message.pingSequence!))), from: to, now: a.nextDeadline)
            }
        }
        #expect(targets.count >= 16)
        #expect(Set(targets.prefix(8)).count == 8)
        #expect(Set(targets.dropFirst(8).prefix(8)).count == 8)
    }
}

extension MembershipInstance {
    /// Ticks until a probe's ping goes out; returns when, its sequence number and its target.
    mutating func tickUntilPing() -> (MonotonicInstant, UInt32, MemberID) {
        for _ in 0..<1_000 {
            let now = nextDeadline
            for (message, _) in onTick(now: now).sent {
                if case .ping(let ping) = message.body { return (now, ping.sequenceNumber, ping.targetID) }
            }
        }
        fatalError("no probe in 1,000 ticks")
    }
}
