import Membership

enum MembershipHarnesses {
    static func codec(_ bytes: [UInt8]) {
        guard let message = try? MembershipCodec.decode(bytes) else { return }
        let encoded = MembershipCodec.encode(message)
        require(encoded.count == MembershipCodec.encodedBytes(of: message), "encodedBytes disagrees with encode")
        guard let again = try? MembershipCodec.decode(encoded) else { fatalError("a decoded message did not decode once re-encoded") }
        require(again == message, "the round trip changed the message")
    }

    static func member(_ n: Int) -> Member {
        Member(id: MemberID("m\(n)"), address: MemberAddress(host: "10.0.0.\(n)", port: 7946), role: .agent, version: "1.0")
    }

    /// Member 1 that already knows 2, 3 and 4. The first input byte picks the sender; the rest,
    /// cut at each 0xFF 0xFE pair, are messages received a second apart, each followed by the
    /// timers that fall due.
    static func core(_ bytes: [UInt8]) {
        guard var instance = try? MembershipInstance(localMember: member(1), random: MembershipRandom(seed: 1), now: .zero) else {
            fatalError("the harness's own member was refused")
        }
        _ = instance.onMessage(MembershipMessage(.gossip, gossip: (2...4).map { .alive(member($0)) }),
                               from: member(2).address, now: .zero)
        guard let first = bytes.first else { return }
        let sender = member(Int(first % 6) + 1).address
        var now = MonotonicInstant.zero
        for piece in split(Array(bytes.dropFirst())) {
            now = MonotonicInstant(milliseconds: now.milliseconds + 1_000)
            if let message = try? MembershipCodec.decode(piece) {
                _ = instance.onMessage(message, from: sender, now: now)
            }
            var ticks = 0
            while instance.nextDeadline <= now, ticks < 64 {
                _ = instance.onTick(now: instance.nextDeadline)
                ticks += 1
            }
            require(instance.localMember.incarnation <= MembershipInstance.incarnationCeiling, "incarnation passed the ceiling")
        }
    }

    /// Pieces of `bytes` between the separators 0xFF 0xFE, at most 32.
    static func split(_ bytes: [UInt8]) -> [[UInt8]] {
        var pieces: [[UInt8]] = [[]]
        var index = 0
        while index < bytes.count, pieces.count <= 32 {
            if bytes[index] == 0xFF, index + 1 < bytes.count, bytes[index + 1] == 0xFE {
                pieces.append([])
                index += 2
            } else {
                pieces[pieces.count - 1].append(bytes[index])
                index += 1
            }
        }
        return pieces
    }
}
