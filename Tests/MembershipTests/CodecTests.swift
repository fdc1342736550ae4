import TestSupport
import Membership
import Testing

@Suite(.onBackgroundThreads) struct CodecTests {
    static func randomString(_ random: inout MembershipRandom, bytesMax: Int, allowEmpty: Bool) -> String {
        let alphabet = Array("abcdefghijklmnopqrstuvwxyz0123456789-.é🛶")
        let count = random.below(bytesMax / 4 + 1) + (allowEmpty ? 0 : 1)
        return String((0..<count).map { _ in alphabet[random.below(alphabet.count)] })
    }

    static func randomMember(_ random: inout MembershipRandom) -> Member {
        var pairs: [String: String] = [:]
        for _ in 0..<random.below(4) {
            pairs[randomString(&random, bytesMax: 20, allowEmpty: false)] = randomString(&random, bytesMax: 20, allowEmpty: true)
        }
        return Member(id: MemberID(randomString(&random, bytesMax: 128, allowEmpty: false)),
                      address: MemberAddress(host: randomString(&random, bytesMax: 60, allowEmpty: false),
                                             port: UInt16(truncatingIfNeeded: random.next())),
                      metadata: MemberMetadata(pairs), role: random.below(2) == 0 ? .voter : .agent,
                      version: randomString(&random, bytesMax: 64, allowEmpty: true),
                      incarnation: random.next() >> random.below(64),
                      status: MemberStatus.allCases[random.below(4)])
    }

    static func randomMessage(_ random: inout MembershipRandom) -> MembershipMessage {
        let id = MemberID(randomString(&random, bytesMax: 40, allowEmpty: false))
        let sequence = UInt32(truncatingIfNeeded: random.next())
        var gossip: [Gossip] = []
        for _ in 0..<random.below(6) {
            switch random.below(3) {
            case 0:
                var member = randomMember(&random)
                member.status = .alive
                gossip.append(.alive(member))
            case 1: gossip.append(.suspect(id, incarnation: random.next(), from: randomMember(&random).id))
            default: gossip.append(.dead(id, incarnation: random.next() >> 40, from: id))
            }
        }
        switch random.below(6) {
        case 0: return MembershipMessage(.ping(Ping(sequenceNumber: sequence, targetID: id)), gossip: gossip)
        case 1:
            return MembershipMessage(.pingRequest(PingRequest(sequenceNumber: sequence, targetID: id,
                                                              targetAddress: randomMember(&random).address,
                                                              wantsNack: random.below(2) == 0)), gossip: gossip)
        case 2: return MembershipMessage(.ack(Ack(sequenceNumber: sequence)), gossip: gossip)
        case 3: return MembershipMessage(.nack(Nack(sequenceNumber: sequence)), gossip: gossip)
        case 4: return MembershipMessage(.gossip, gossip: gossip)
        default:
            let kind = [PushPull.Kind.join, .request, .response][random.below(3)]
            return MembershipMessage(.pushPull(PushPull(kind: kind, members: (0..<random.below(8)).map { _ in randomMember(&random) })))
        }
    }

    @Test func codecRoundTripsAndSizesAreExact() throws {
        var random = MembershipRandom(seed: 7)
        for _ in 0..<2_000 {
            let message = Self.randomMessage(&random)
            let bytes = MembershipCodec.encode(message)
            #expect(bytes.count == MembershipCodec.encodedBytes(of: message))
            #expect(try MembershipCodec.decode(bytes) == message)
        }
    }

    @Test func decoderRejectsGarbageWithTypedErrors() {
        #expect(throws: MembershipCodecError.truncated(offset: 0)) { try MembershipCodec.decode([]) }
        #expect(throws: MembershipCodecError.unsupportedVersion(9)) { try MembershipCodec.decode([9, 1]) }
        #expect(throws: MembershipCodecError.unknownMessageType(77)) { try MembershipCodec.decode([1, 77]) }
        var ack = MembershipCodec.encode(MembershipMessage(.ack(Ack(sequenceNumber: 5))))
        ack.append(0)
        #expect(throws: MembershipCodecError.trailingBytes(count: 1)) { try MembershipCodec.decode(ack) }
        // A varint that never ends, and an over-long one.
        #expect(throws: MembershipCodecError.self) { try MembershipCodec.decode([1, 3] + Array(repeating: 0xFF, count: 11)) }
        #expect(throws: MembershipCodecError.invalidValue(field: "sequenceNumber", value: 1 << 32)) {
            try MembershipCodec.decode([1, 3, 0x80, 0x80, 0x80, 0x80, 0x10, 0])
        }
        // Invalid UTF-8 in an ID.
        #expect(throws: MembershipCodecError.invalidUTF8(field: "memberID")) { try MembershipCodec.decode([1, 1, 1, 2, 0xC3, 0x28, 0]) }
        // Unsorted metadata keys in a push-pull member.
        let member = Member(id: MemberID("a"), address: MemberAddress(host: "h", port: 1),
                            metadata: MemberMetadata(["x": "1", "y": "2"]))
        var bytes = MembershipCodec.encode(MembershipMessage(.pushPull(PushPull(kind: .request, members: [member]))))
        let x = bytes.firstIndex(of: UInt8(ascii: "x"))!
        let y = bytes.firstIndex(of: UInt8(ascii: "y"))!
        bytes.swapAt(x, y)
        #expect(throws: MembershipCodecError.metadataNotSorted(key: "x")) { try MembershipCodec.decode(bytes) }
    }

    /// Random bytes and mutated valid encodings never crash the decoder; whatever it accepts
    /// re-encodes to the same bytes (one encoding per message).
    @Test func decoderSurvivesFuzzing() {
        var random = MembershipRandom(seed: UInt64(Self.seedFromEnvironment ?? 11))
        var accepted = 0
        for round in 0..<20_000 {
            var bytes: [UInt8]
            if round % 2 == 0 {
                bytes = (0..<random.below(64)).map { _ in UInt8(truncatingIfNeeded: random.next()) }
                if bytes.count > 1 && random.below(2) == 0 { bytes[0] = 1 }
            } else {
                bytes = MembershipCodec.encode(Self.randomMessage(&random))
                for _ in 0..<(1 + random.below(3)) where !bytes.isEmpty {
                    switch random.below(3) {
                    case 0: bytes[random.below(bytes.count)] = UInt8(truncatingIfNeeded: random.next())
                    case 1: bytes.removeLast(random.below(bytes.count) + 1)
                    default: bytes.insert(UInt8(truncatingIfNeeded: random.next()), at: random.below(bytes.count))
                    }
                }
            }
            if let message = try? MembershipCodec.decode(bytes) {
                accepted += 1
                #expect(MembershipCodec.encode(message) == bytes, "round \(round)")
            }
        }
        #expect(accepted > 0)
    }

    static var seedFromEnvironment: Int? { nil }
}
