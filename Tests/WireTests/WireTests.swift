import TestSupport
import Raft
import Testing
@testable import Wire

@Suite(.onBackgroundThreads) struct CRC32CTests {
    @Test func standardCheckValue() {
        #expect(CRC32C.checksum(Array("123456789".utf8)) == 0xE306_9283)
    }

    @Test func emptyInputIsZero() {
        #expect(CRC32C.checksum([UInt8]()) == 0)
    }

    /// Known answers from RFC 3720 appendix B.4 (iSCSI): 32 zero bytes, 32 0xFF bytes, 0...31.
    @Test func iscsiKnownAnswers() {
        #expect(CRC32C.checksum([UInt8](repeating: 0, count: 32)) == 0x8A91_36AA)
        #expect(CRC32C.checksum([UInt8](repeating: 0xFF, count: 32)) == 0x62A8_AB43)
        #expect(CRC32C.checksum((0..<32).map { UInt8($0) }) == 0x46DD_794E)
    }

    /// The sliced loop and the byte loop must agree for every length and split point.
    @Test func incrementalUpdateMatchesWhole() {
        var random = TestSupport.SplitMix64(seed: 7)
        let bytes = (0..<200).map { _ in UInt8(truncatingIfNeeded: random.next()) }
        let whole = CRC32C.checksum(bytes)
        for split in 0...bytes.count {
            #expect(CRC32C.update(CRC32C.checksum(bytes[..<split]), with: bytes[split...]) == whole, "split \(split)")
        }
        // A slow bit-at-a-time reference for every prefix length.
        for length in 0...bytes.count {
            #expect(CRC32C.checksum(bytes[..<length]) == bitwiseReference(bytes[..<length]), "length \(length)")
        }
    }

    func bitwiseReference(_ bytes: ArraySlice<UInt8>) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        for byte in bytes {
            crc ^= UInt32(byte)
            for _ in 0..<8 { crc = crc & 1 != 0 ? (crc >> 1) ^ 0x82F6_3B78 : crc >> 1 }
        }
        return ~crc
    }
}

@Suite(.onBackgroundThreads) struct RoundTripTests {
    static let seed: UInt64 = 0x5EED_0001

    @Test(arguments: 0..<Message.payloadCaseCount)
    func everyMessageKindRoundTrips(caseIndex: Int) throws {
        var generator = ValueGenerator(seed: Self.seed &+ UInt64(caseIndex))
        for iteration in 0..<200 {
            let message = generator.message(caseIndex: caseIndex)
            #expect(message.payloadCaseIndex == caseIndex)
            let bytes = Frame.encode(message)
            var decoder = FrameDecoder()
            try decoder.feed(bytes)
            let decoded = try decoder.next(Message.self)
            #expect(decoded == message, "seed \(Self.seed &+ UInt64(caseIndex)) iteration \(iteration)")
            #expect(try decoder.nextFrame() == nil)
        }
    }

    @Test func logValuesRoundTrip() throws {
        var generator = ValueGenerator(seed: Self.seed)
        for _ in 0..<300 {
            let entry = generator.entry()
            #expect(try Entry.decode(body: entry.encodedBody) == entry)
            let hardState = generator.hardState()
            #expect(try HardState.decode(body: hardState.encodedBody) == hardState)
            let snapshot = generator.snapshot()
            #expect(try Snapshot.decode(body: snapshot.encodedBody) == snapshot)
            #expect(try SnapshotMetadata.decode(body: snapshot.metadata.encodedBody) == snapshot.metadata)
            let membership = generator.membership()
            #expect(try Membership.decode(body: membership.encodedBody) == membership)
            // And framed, under their own kinds.
            var decoder = FrameDecoder()
            try decoder.feed(Frame.encode(entry) + Frame.encode(hardState) + Frame.encode(snapshot) + Frame.encode(membership))
            #expect(try decoder.next(Entry.self) == entry)
            #expect(try decoder.next(HardState.self) == hardState)
            #expect(try decoder.next(Snapshot.self) == snapshot)
            #expect(try decoder.next(Membership.self) == membership)
        }
    }

    /// A stream cut at arbitrary points yields the same frames, in order, and "need more" between.
    @Test func streamFedInRandomPiecesYieldsEveryFrame() throws {
        var generator = ValueGenerator(seed: Self.seed ^ 0xFEED)
        let messages = (0..<300).map { _ in generator.message() }
        let stream = messages.flatMap { Frame.encode($0) }
        var decoder = FrameDecoder()
        var decoded: [Message] = []
        var position = 0
        while position < stream.count {
            let piece = min(stream.count - position, generator.count(97))
            try decoder.feed(stream[position..<position + piece])
            position += piece
            while let message = try decoder.next(Message.self) { decoded.append(message) }
        }
        #expect(decoded == messages)
        #expect(decoder.bufferedBytes == 0)
    }

    @Test func layoutIsStable() {
        let message = Message(from: NodeID(1), to: NodeID(2), term: 3, payload: .timeoutNow)
        let bytes = Frame.encode(message)
        #expect(Array(bytes[0..<8]) == [0x46, 0x4C, 1, FrameKind.message.rawValue, 25, 0, 0, 0])
        #expect(bytes.count == Frame.overheadBytes + 25)
    }
}

@Suite(.onBackgroundThreads) struct RejectionTests {
    func frameError(_ bytes: [UInt8], frameBytesMax: Int = Frame.frameBytesMaxDefault) -> WireError? {
        var decoder = FrameDecoder(frameBytesMax: frameBytesMax)
        do {
            try decoder.feed(bytes)
            while try decoder.next(Message.self) != nil {}
            return nil
        } catch {
            return error
        }
    }

    @Test func unknownVersionIsRefusedClearly() {
        var bytes = Frame.encode(Message(from: NodeID(1), to: NodeID(2), term: 1, payload: .timeoutNow))
        bytes[2] = 2
        #expect(frameError(bytes) == .unsupportedVersion(found: 2, supported: 1...1))
        // Refused as soon as the version byte arrives, before any length or body is trusted.
        var decoder = FrameDecoder()
        #expect(throws: WireError.unsupportedVersion(found: 9, supported: 1...1)) {
            try decoder.feed([0x46, 0x4C, 9])
            _ = try decoder.nextFrame()
        }
        // And the decoder stays failed.
        #expect(throws: WireError.unsupportedVersion(found: 9, supported: 1...1)) { _ = try decoder.nextFrame() }
    }

    @Test func oversizeLengthIsRefusedBeforeTheBodyArrives() {
        var header = ByteWriter()
        header.write(Frame.magic)
        header.write(Frame.version)
        header.write(FrameKind.message.rawValue)
        header.write(UInt32.max)
        #expect(frameError(header.bytes) == .frameTooLarge(bodyBytes: Int(UInt32.max), frameBytesMax: Frame.frameBytesMaxDefault))
        #expect(frameError(Frame.encode(Message(from: NodeID(1), to: NodeID(2), term: 1, payload: .timeoutNow)),
                           frameBytesMax: 10) == .frameTooLarge(bodyBytes: 25, frameBytesMax: 10))
    }

    @Test func reservedNodeIDIsInvalidNotATrap() {
        var writer = ByteWriter()
        writer.write(UInt64(0))  // from: reserved
        writer.write(UInt64(2))
        writer.write(UInt64(1))
        writer.write(Message.PayloadTag.timeoutNow.rawValue)
        #expect(throws: WireError.invalidValue(field: "message.from", reason: "node ID 0 is reserved")) {
            _ = try Message.decode(body: writer.bytes)
        }
    }

    @Test func duplicateOrOverlappingMembersAreInvalid() {
        var writer = ByteWriter()
        writer.write(UInt32(1)); writer.write(UInt64(3))
        writer.write(UInt32(1)); writer.write(UInt64(3))
        #expect(throws: WireError.invalidValue(field: "membership", reason: "a node is both voter and learner")) {
            _ = try Membership.decode(body: writer.bytes)
        }
    }

    @Test func snapshotChunkOverrunningItsTotalIsInvalid() {
        let chunk = InstallSnapshotChunk(
            metadata: SnapshotMetadata(index: 1, term: 1, membership: .empty), totalBytes: 10, offset: 8, data: [1, 2, 3])
        let message = Message(from: NodeID(1), to: NodeID(2), term: 1, payload: .installSnapshot(chunk))
        let error = frameError(Frame.encode(message))
        guard case .invalidValue(field: "installSnapshot", _) = error else {
            Issue.record("expected invalidValue, got \(String(describing: error))")
            return
        }
    }

    @Test func hugeElementCountDoesNotAllocate() {
        var writer = ByteWriter()
        writer.write(UInt32.max)  // voters: 4 billion claimed, none present
        #expect(throws: WireError.truncated(field: "membership.voters", neededBytes: Int(UInt32.max) * 8, availableBytes: 0)) {
            _ = try Membership.decode(body: writer.bytes)
        }
    }

    @Test func feedingBeyondTheBoundThrows() {
        var decoder = FrameDecoder(frameBytesMax: 16)
        #expect(throws: WireError.self) { try decoder.feed([UInt8](repeating: 0x46, count: 100)) }
    }
}

/// Seeded fuzzing: whatever the bytes, the decoder returns frames, asks for more, or throws a
/// `WireError`; it never traps. A failing case prints its seed and iteration.
@Suite(.onBackgroundThreads) struct FuzzTests {
    static let seed: UInt64 = 0xF022_2024

    @Test func randomBytesNeverCrash() {
        var generator = ValueGenerator(seed: Self.seed)
        for _ in 0..<3000 {
            var bytes = generator.bytes(200)
            // Half the time, start with a plausible header so the fuzzing reaches the body decoders.
            if generator.bool() && bytes.count >= 4 {
                bytes[0] = 0x46; bytes[1] = 0x4C; bytes[2] = 1
                bytes[3] = UInt8(generator.count(7))
            }
            exercise(bytes, frameBytesMax: 1 + generator.count(300))
        }
    }

    /// Bodies with a valid frame around them: the checksum is right, so only the body decoders stand
    /// between random bytes and the Raft types' preconditions.
    @Test func randomBodiesInValidFramesNeverCrash() {
        var generator = ValueGenerator(seed: Self.seed ^ 1)
        for _ in 0..<3000 {
            let kind = FrameKind.allCases[generator.count(FrameKind.allCases.count - 1)]
            var body = generator.bytes(120)
            if generator.bool() {
                // Start from a real message so the random part lands deep inside.
                let real = generator.message().encodedBody
                body = Array(real.prefix(generator.count(real.count))) + body
            }
            let frame = Frame(kind: kind, body: body).encoded
            var decoder = FrameDecoder()
            do {
                try decoder.feed(frame)
                let decoded = try decoder.nextFrame()
                #expect(decoded?.body == body)
                _ = try? decoded?.decode(Message.self)
                _ = try? Entry.decode(body: body)
                _ = try? Snapshot.decode(body: body)
                _ = try? HardState.decode(body: body)
                _ = try? Membership.decode(body: body)
            } catch {
                Issue.record("a valid frame was refused: \(error)")
            }
        }
    }

    @Test func mutatedValidFramesAreRefusedWithTypedErrors() throws {
        var generator = ValueGenerator(seed: Self.seed ^ 2)
        for iteration in 0..<3000 {
            let message = generator.message()
            var bytes = Frame.encode(message)
            switch iteration % 4 {
            case 0:  // one flipped bit anywhere: CRC-32C detects every single-bit error
                let bit = generator.count(bytes.count * 8 - 1)
                bytes[bit / 8] ^= UInt8(1) << UInt8(bit % 8)
                expectRefused(bytes, iteration)
            case 1:  // several flipped bits
                for _ in 0..<(2 + generator.count(6)) {
                    let bit = generator.count(bytes.count * 8 - 1)
                    bytes[bit / 8] ^= UInt8(1) << UInt8(bit % 8)
                }
                exercise(bytes, frameBytesMax: Frame.frameBytesMaxDefault)
            case 2:  // truncation: never a frame, only "need more"
                let cut = generator.count(bytes.count - 1)
                var decoder = FrameDecoder()
                try decoder.feed(bytes[..<cut])
                #expect(try decoder.nextFrame() == nil, "iteration \(iteration): truncated frame at \(cut)")
            default:  // an oversize or undersize length
                let length = UInt32(truncatingIfNeeded: generator.bool() ? generator.uint64() : UInt64(generator.count(64)))
                for index in 0..<4 { bytes[4 + index] = UInt8(truncatingIfNeeded: length >> UInt32(8 * index)) }
                exercise(bytes, frameBytesMax: 1 << 16)
            }
        }
    }

    func expectRefused(_ bytes: [UInt8], _ iteration: Int) {
        var decoder = FrameDecoder()
        do {
            try decoder.feed(bytes)
            let frame = try decoder.nextFrame()
            // A flipped length bit may make the frame look longer: then it is only "need more".
            #expect(frame == nil, "iteration \(iteration): corrupted frame accepted")
        } catch {
            // Any WireError is acceptable; the typed throw guarantees it is one.
        }
    }

    func exercise(_ bytes: [UInt8], frameBytesMax: Int) {
        var decoder = FrameDecoder(frameBytesMax: frameBytesMax)
        do {
            try decoder.feed(bytes)
            while let frame = try decoder.nextFrame() { _ = try? frame.decode(Message.self) }
        } catch {
            let _: WireError = error  // typed: nothing else can escape
        }
    }
}
