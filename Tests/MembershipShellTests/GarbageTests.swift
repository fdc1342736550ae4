import Membership
import NIOCore
import NIOPosix
import Testing

@testable import MembershipShell

/// Bytes from the network are not to be trusted: every malformed datagram or frame is dropped
/// and counted, and the shell keeps working.
@Suite("Membership shell drops garbage")
struct GarbageTests {
    @Test func garbageDatagramsAndFramesAreCountedAndTheShellKeepsWorking() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let target = try await startShell("g1", group: group, seed: 31)
        try await target.join(seeds: [])
        let port = Int(target.localAddress.port)

        // Datagrams: seeded random bytes, a valid version with an unknown type, a push-pull
        // (which belongs on a stream), a truncated ping.
        let seed = UInt64.random(in: 0...UInt64.max)
        var random = MembershipRandom(seed: seed)
        var datagrams: [[UInt8]] = (0..<200).map { _ in
            (0..<(1 + random.below(1_500))).map { _ in UInt8(truncatingIfNeeded: random.next()) }
        }
        datagrams.append([MembershipCodec.version, 0xEE, 1, 2, 3])
        datagrams.append(MembershipCodec.encode(MembershipMessage(.pushPull(PushPull(kind: .request, members: [])))))
        datagrams.append(Array(MembershipCodec.encode(MembershipMessage(.ping(Ping(sequenceNumber: 7, targetID: MemberID("g1"))))).dropLast()))
        let sender = try await DatagramBootstrap(group: group).bind(host: loopback, port: 0).get()
        let destination = try SocketAddress(ipAddress: loopback, port: port)
        // In batches, each counted before the next: a burst could overflow the socket's receive
        // buffer on a loaded host, and the kernel's drops are not the shell's to count.
        for (index, bytes) in datagrams.enumerated() {
            var buffer = sender.allocator.buffer(capacity: bytes.count)
            buffer.writeBytes(bytes)
            try await sender.writeAndFlush(AddressedEnvelope(remoteAddress: destination, data: buffer)).get()
            if index % 20 == 19 || index == datagrams.count - 1 {
                try await eventually("datagram \(index) received (seed \(seed))") {
                    await target.counters().datagramsReceived == index + 1
                }
            }
        }

        // Frames: a length above the bound, an empty frame, a datagram-kind message, random bytes
        // under a valid length, and a response where a request belongs.
        let ping = MembershipCodec.encode(MembershipMessage(.ping(Ping(sequenceNumber: 1, targetID: MemberID("g1")))))
        let response = MembershipCodec.encode(MembershipMessage(.pushPull(PushPull(kind: .response, members: []))))
        let frames: [[UInt8]] = [
            [0xFF, 0xFF, 0xFF, 0xFF, 1, 2],
            [0, 0, 0, 0],
            framed(ping),
            framed((0..<64).map { _ in UInt8(truncatingIfNeeded: random.next()) }),
            framed(response),
        ]
        for bytes in frames {
            let channel = try await ClientBootstrap(group: group).connect(to: try SocketAddress(ipAddress: loopback, port: port)).get()
            var buffer = channel.allocator.buffer(capacity: bytes.count)
            buffer.writeBytes(bytes)
            try await channel.writeAndFlush(buffer).get()
            // The shell closes the connection after a bad frame.
            try await channel.closeFuture.get()
        }

        try await eventually("frames counted") { await target.counters().streamFramesDroppedUndecodable == frames.count }
        let counters = await target.counters()
        // A random datagram decodes only if it starts with the version byte and a valid type and
        // is well-formed to its last byte: allow a few such flukes.
        #expect(counters.datagramsReceived == datagrams.count, "seed \(seed)")
        #expect(counters.datagramsDroppedUndecodable + counters.datagramsDroppedStreamMessage >= datagrams.count - 3,
                "seed \(seed): \(counters)")
        #expect(counters.datagramsDroppedStreamMessage >= 1)
        #expect(counters.garbageDropped >= datagrams.count - 3 + frames.count)

        // Still working: another member joins through it and both see each other alive.
        let joiner = try await startShell("g2", group: group, seed: 32)
        try await joiner.join(seeds: [target.localAddress])
        try await eventually("g1 and g2 alive after the garbage") { try await allAlive([target, joiner], count: 2) }

        try await sender.close()
        await target.stop()
        await joiner.stop()
        try await group.shutdownGracefully()
    }

    @Test func streamFrameDecoderWaitsForWholeFramesAndRefusesLargeOnes() throws {
        let allocator = ByteBufferAllocator()
        var decoder = StreamFrame.Decoder(frameBytesMax: 16)
        var head = allocator.buffer(bytes: [0, 0, 0, 3, 9])
        #expect(try decoder.feed(&head) == nil)
        var tail = allocator.buffer(bytes: [8, 7])
        #expect(try decoder.feed(&tail) == [9, 8, 7])

        var large = StreamFrame.Decoder(frameBytesMax: 16)
        var header = allocator.buffer(bytes: [0, 0, 0, 17])
        #expect(throws: StreamFrame.DecodeError.frameTooLarge(bytes: 17, bytesMax: 16)) { try large.feed(&header) }
    }

    @Test func machineIDIsOneLineOfPrintableCharacters() throws {
        #expect(try MachineID.parse(Array("0123456789abcdef0123456789abcdef\n".utf8)) == MemberID("0123456789abcdef0123456789abcdef"))
        #expect(throws: MembershipShellError.self) { try MachineID.parse([]) }
        #expect(throws: MembershipShellError.self) { try MachineID.parse(Array("two words\n".utf8)) }
        #expect(throws: MembershipShellError.self) { try MachineID.parse([UInt8](repeating: 0x61, count: 200)) }
        #expect(throws: MembershipShellError.self) { try MachineID.read(path: "/nonexistent/machine-id") }
    }

    @Test func invalidConfigurationsAreRefusedAtStart() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let wildcard = MembershipShellConfiguration(bindHost: "0.0.0.0", bindPort: 0, memberID: MemberID("w"))
        await #expect(throws: MembershipShellError.self) {
            _ = try await MembershipShell.start(configuration: wildcard, eventLoop: group.next())
        }
        let name = MembershipShellConfiguration(bindHost: "localhost", bindPort: 0, memberID: MemberID("n"))
        await #expect(throws: MembershipShellError.self) {
            _ = try await MembershipShell.start(configuration: name, eventLoop: group.next())
        }
        try await group.shutdownGracefully()
    }
}

func framed(_ payload: [UInt8]) -> [UInt8] {
    let count = UInt32(payload.count)
    return [UInt8(count >> 24), UInt8(truncatingIfNeeded: count >> 16), UInt8(truncatingIfNeeded: count >> 8),
            UInt8(truncatingIfNeeded: count)] + payload
}
