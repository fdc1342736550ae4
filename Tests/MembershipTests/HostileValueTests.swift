import TestSupport
import Testing
@testable import Membership

/// Incarnations no member produces (it adds one per refutation): a suspicion of us at UInt64.max
/// would make the refutation's `+ 1` trap, and spread, crashing the member at every restart.
@Suite(.onBackgroundThreads) struct MembershipHostileValueTests {
    static let extreme: [Incarnation] = [MembershipInstance.receivedIncarnationCeiling, MembershipInstance.incarnationCeiling - 1,
                                         MembershipInstance.incarnationCeiling, UInt64.max - 1, UInt64.max]

    @Test(arguments: extreme)
    func aMessageWithAnIncarnationPastTheCeilingIsDroppedWholeAndCounted(incarnation: Incarnation) {
        var instance = makeInstanceKnowing(3)
        let before = instance.localMember
        let hostile: [MembershipMessage] = [
            MembershipMessage(.gossip, gossip: [.suspect(memberID(1), incarnation: incarnation, from: memberID(2))]),
            MembershipMessage(.gossip, gossip: [.dead(memberID(1), incarnation: incarnation, from: memberID(2))]),
            MembershipMessage(.gossip, gossip: [.alive(makeMember(1, incarnation: incarnation))]),
            // A good entry beside a hostile one: the whole message goes, the good one too.
            MembershipMessage(.ping(Ping(sequenceNumber: 1, targetID: memberID(1))),
                              gossip: [.alive(makeMember(4)), .suspect(memberID(2), incarnation: incarnation, from: memberID(3))]),
            MembershipMessage(.pushPull(PushPull(kind: .request, members: [makeMember(2), makeMember(1, incarnation: incarnation)]))),
        ]
        for (offset, message) in hostile.enumerated() {
            #expect(instance.onMessage(message, from: address(2), now: ms(10)).isEmpty, "no answer, no change: \(message)")
            #expect(instance.malformedMessagesDropped == offset + 1)
            #expect(instance.localMember == before, "not refuted")
        }
        #expect(instance.members.first { $0.id == memberID(4) } == nil)
        #expect(instance.members.first { $0.id == memberID(2) }?.status == .alive)
        // Just below the received ceiling is accepted: refuted, no trap, and the member's own
        // incarnation stays below the hard ceiling with 2^32 refutations to spare. (Peers drop
        // an incarnation at the received ceiling, so a member driven there by a forged suspicion
        // is not seen alive again: a forging peer can cost liveness, never a crash.)
        _ = instance.receive(.suspect(memberID(1), incarnation: MembershipInstance.receivedIncarnationCeiling - 1, from: memberID(2)))
        #expect(instance.localMember.incarnation == MembershipInstance.receivedIncarnationCeiling)
        #expect(instance.localMember.incarnation < MembershipInstance.incarnationCeiling)
    }
}
