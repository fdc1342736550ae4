import TestSupport
import Testing
import Membership

/// Two machines with one machine ID (a cloned image): the membership core tells a second live
/// machine from an earlier life of this one at another address (fleet's TestDetectMachineId).
@Suite(.onBackgroundThreads) struct IdentityClashTests {
    func pings(_ directives: [MessageDirective], to target: MemberAddress) -> [MembershipMessage] {
        pings(directives.sent, to: target)
    }

    func pings(_ directives: [TickDirective], to target: MemberAddress) -> [MembershipMessage] {
        pings(directives.sent, to: target)
    }

    func pings(_ sent: [(MembershipMessage, MemberAddress)], to target: MemberAddress) -> [MembershipMessage] {
        sent.filter { $0.1 == target && $0.0.pingSequence != nil }.map(\.0)
    }

    @Test func aLiveMachineAnsweringToOurIDAtAnotherAddressIsAClash() throws {
        var original = makeInstance(1)
        let cloneMember = Member(id: memberID(1), address: address(5), role: .agent, version: "1.0", incarnation: 3)
        var clone = try MembershipInstance(localMember: cloneMember, random: MembershipRandom(seed: 2), now: .zero)

        // The clone's announcement reaches the original, which pings that address naming its ID.
        let answer = original.receive(.alive(cloneMember), from: 5)
        let sent = pings(answer, to: address(5))
        #expect(sent.count == 1)
        #expect(original.hasIdentityProbesInFlight && original.identityClash == nil)

        // The clone answers to that ID like the original would; the ack makes it a clash. The
        // ping's piggybacked announcement of the original makes the clone probe back.
        let toOriginal = clone.onMessage(sent[0], from: address(1), now: ms(5)).sent.filter { $0.1 == address(1) }.map(\.0)
        let acks = toOriginal.filter { if case .ack = $0.body { true } else { false } }
        let probesBack = toOriginal.filter { $0.pingSequence != nil }
        #expect(acks.count == 1 && probesBack.count == 1)
        _ = original.onMessage(acks[0], from: address(5), now: ms(10))
        #expect(original.identityClash == address(5))
        #expect(!original.hasIdentityProbesInFlight)

        // Both sides learn it: the original acks the clone's probe in turn.
        let reply = original.onMessage(probesBack[0], from: address(5), now: ms(15)).sent.filter { $0.1 == address(5) }.map(\.0)
        for message in reply { _ = clone.onMessage(message, from: address(1), now: ms(20)) }
        #expect(clone.identityClash == address(1))
    }

    @Test func anEarlierLifeAtAnOldAddressThatNoLongerAnswersIsNoClash() {
        var restarted = makeInstance(1)
        let earlier = Member(id: memberID(1), address: address(6), role: .agent, version: "1.0", incarnation: 2)
        let sent = pings(restarted.receive(.alive(earlier), from: 6), to: address(6))
        #expect(sent.count == 1)
        // Still refutes, as before: its own record must win over the stale one.
        #expect(restarted.localMember.incarnation > 2)

        // Nobody answers any of its pings (resent a probe timeout apart); an ack after the last
        // one's timeout no longer counts.
        let window = MembershipConfiguration.lan.probeTimeoutMilliseconds * Int64(MembershipInstance.identityProbeSends)
        let resent = pings(restarted.run(until: ms(window + 100)), to: address(6))
        #expect(resent.count == MembershipInstance.identityProbeSends - 1)
        #expect(resent.allSatisfy { $0.pingSequence == sent[0].pingSequence })
        #expect(!restarted.hasIdentityProbesInFlight)
        let lateAck = MembershipMessage(.ack(Ack(sequenceNumber: sent[0].pingSequence!)))
        _ = restarted.onMessage(lateAck, from: address(6), now: ms(window + 200))
        #expect(restarted.identityClash == nil)
    }

    /// A busy clone answers after the first ping's timeout, or the first ping is lost: the probe
    /// is resent and the answer still counts (a new machine started unchecked in a fresh-clone
    /// run when one unanswered ping ended the probe).
    @Test func aSlowOrLostFirstAnswerStillShowsTheClash() throws {
        var newcomer = makeInstance(1)
        let originalMember = Member(id: memberID(1), address: address(5), role: .agent, version: "1.0", incarnation: 3)
        var original = try MembershipInstance(localMember: originalMember, random: MembershipRandom(seed: 2), now: .zero)
        let first = pings(newcomer.receive(.alive(originalMember), from: 5), to: address(5))
        #expect(first.count == 1)

        // The first ping is lost; a probe timeout later it goes out again and is answered.
        let timeout = MembershipConfiguration.lan.probeTimeoutMilliseconds
        let again = pings(newcomer.run(until: ms(timeout + 10)), to: address(5))
        #expect(again.count == 1 && again[0].pingSequence == first[0].pingSequence)
        #expect(newcomer.hasIdentityProbesInFlight && newcomer.identityClash == nil)
        let acks = original.onMessage(again[0], from: address(1), now: ms(timeout + 20)).sent
            .filter { $0.1 == address(1) }.map(\.0).filter { if case .ack = $0.body { true } else { false } }
        #expect(acks.count == 1)
        // It arrives late, after the second ping's timeout too: still within the probe's window.
        _ = newcomer.onMessage(acks[0], from: address(5), now: ms(timeout * 2 + 50))
        #expect(newcomer.identityClash == address(5))
        #expect(!newcomer.hasIdentityProbesInFlight)
    }

    @Test func anotherMachineNowAtTheOldAddressStaysSilentSoNoClash() throws {
        var restarted = makeInstance(1)
        var other = makeInstance(7)
        let earlier = Member(id: memberID(1), address: address(7), role: .agent, version: "1.0", incarnation: 2)
        let sent = pings(restarted.receive(.alive(earlier), from: 7), to: address(7))
        #expect(sent.count == 1)
        // A ping naming m1 reaches m7, which does not answer for another machine's ID.
        let replies = other.onMessage(sent[0], from: address(1), now: ms(5)).sent
        #expect(!replies.contains { if case .ack = $0.0.body { true } else { false } })
        #expect(restarted.identityClash == nil)
    }

    @Test func theSameAddressIsAnEarlierLifeOfThisMachineAndIsNotProbed() {
        var restarted = makeInstance(1)
        let answer = restarted.receive(.alive(makeMember(1, incarnation: 4)), from: 2)
        #expect(pings(answer, to: address(1)).isEmpty)
        #expect(!restarted.hasIdentityProbesInFlight)
    }
}
