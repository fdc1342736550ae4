import Logging
import NIOCore
import NIOPosix
import Raft
import Locking
import Testing
import TestSupport
import Wire

@testable import Transport

/// Collects what a transport delivers, for the tests to poll.
final class ReceivedMessages: Sendable {
    let messages = Locked<[Message]>([])

    func append(_ message: Message) { messages.withLock { $0.append(message) } }
    var all: [Message] { messages.withLock { $0 } }
}

/// Polls `condition` until it holds or `timeout` passes. Generous bounds: they only catch hangs,
/// and the cooperative pool may be starved by CPU-bound suites running beside these.
func eventually(timeout: Duration = .seconds(30), _ what: String, _ condition: () async -> Bool) async throws {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if await condition() { return }
        try await Task.sleep(for: .milliseconds(5))
    }
    Issue.record("timed out after \(timeout) waiting for: \(what)")
    throw CancellationError()
}

func heartbeat(from: UInt64, to: UInt64, term: UInt64) -> Message {
    Message(from: NodeID(from), to: NodeID(to), term: term, payload: .heartbeat(Heartbeat(commitIndex: term, readRound: 0)))
}

let loopback = "127.0.0.1"

func startTransport(
    id: UInt64, port: Int = 0, peers: [NodeID: PeerAddress] = [:], group: any EventLoopGroup,
    sendQueueMessagesMax: Int = 4096, received: ReceivedMessages
) async throws -> Transport {
    let configuration = try TransportConfiguration(
        localID: NodeID(id), listenAddress: PeerAddress(host: loopback, port: port), peers: peers,
        sendQueueMessagesMax: sendQueueMessagesMax, reconnectDelayMin: .milliseconds(5),
        reconnectDelayMax: .milliseconds(100), jitterSeed: id)
    return try await Transport.start(configuration: configuration, eventLoop: group.next(),
                                     logger: Logger(label: "transport-test-\(id)"),
                                     receive: { received.append($0) })
}

/// Opens a raw TCP connection to `port`, writes `bytes`, and returns the channel (to watch it close).
func rawConnection(port: Int, writing bytes: [UInt8], group: any EventLoopGroup) async throws -> any Channel {
    let channel = try await ClientBootstrap(group: group).connect(to: try SocketAddress(ipAddress: loopback, port: port)).get()
    var buffer = channel.allocator.buffer(capacity: bytes.count)
    buffer.writeBytes(bytes)
    try await channel.writeAndFlush(buffer).get()
    return channel
}

@Suite("Transport over loopback TCP")
struct TransportTests {
    @Test func framedMessagesCrossARealSocketInOrder() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let receivedByB = ReceivedMessages()
        let b = try await startTransport(id: 2, group: group, received: receivedByB)
        let a = try await startTransport(id: 1, peers: [NodeID(2): PeerAddress(host: loopback, port: b.listenPort)],
                                         group: group, received: ReceivedMessages())
        let sent = (1...200).map { heartbeat(from: 1, to: 2, term: UInt64($0)) }
        a.send(Array(sent[..<100]))
        a.send(Array(sent[100...]))
        try await eventually("200 messages at B") { receivedByB.all.count == 200 }
        #expect(receivedByB.all == sent)
        #expect(await a.counters().messagesSent == 200)
        #expect(await b.counters().messagesReceived == 200)
        await a.shutdown()
        await b.shutdown()
        try await group.shutdownGracefully()
    }

    @Test func garbageBytesCloseThatConnectionAndTheListenerKeepsServing() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let receivedByB = ReceivedMessages()
        let b = try await startTransport(id: 2, group: group, received: receivedByB)

        let garbage = try await rawConnection(port: b.listenPort, writing: Array("GET / HTTP/1.1\r\n\r\n".utf8), group: group)
        try await garbage.closeFuture.get()

        // A well-framed frame of a Wire version this build does not speak: the version byte is
        // the handshake, so it is refused on its first frame.
        var futureVersion = Frame.encode(heartbeat(from: 3, to: 2, term: 1))
        futureVersion[2] = Frame.version &+ 1
        let newer = try await rawConnection(port: b.listenPort, writing: futureVersion, group: group)
        try await newer.closeFuture.get()

        // A frame whose checksum does not match.
        var flipped = Frame.encode(heartbeat(from: 3, to: 2, term: 1))
        flipped[Frame.headerBytes] ^= 0xFF
        let damaged = try await rawConnection(port: b.listenPort, writing: flipped, group: group)
        try await damaged.closeFuture.get()

        try await eventually("three wire errors counted") { await b.counters().connectionsClosedOnWireError == 3 }
        #expect(receivedByB.all.isEmpty)

        let a = try await startTransport(id: 1, peers: [NodeID(2): PeerAddress(host: loopback, port: b.listenPort)],
                                         group: group, received: ReceivedMessages())
        a.send([heartbeat(from: 1, to: 2, term: 7)])
        try await eventually("a good peer is still served") { receivedByB.all == [heartbeat(from: 1, to: 2, term: 7)] }
        await a.shutdown()
        await b.shutdown()
        try await group.shutdownGracefully()
    }

    @Test func reconnectsAfterThePeerRestarts() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let firstLife = ReceivedMessages()
        // A port of its own below the ephemeral range, as a daemon's configured port would be
        // (LoopbackPorts says why): the restart below binds it again.
        let b = try await startTransport(id: 2, port: try LoopbackPorts.reserve(), group: group, received: firstLife)
        let port = b.listenPort
        let a = try await startTransport(id: 1, peers: [NodeID(2): PeerAddress(host: loopback, port: port)],
                                         group: group, received: ReceivedMessages())
        a.send([heartbeat(from: 1, to: 2, term: 1)])
        try await eventually("first life receives") { firstLife.all.count == 1 }
        await b.shutdown()

        let secondLife = ReceivedMessages()
        let restarted = try await startTransport(id: 2, port: port, group: group, received: secondLife)
        // Messages sent while the old connection dies may be lost (Raft retries); keep sending
        // until one arrives over the new connection.
        var term: UInt64 = 2
        try await eventually("second life receives") {
            a.send([heartbeat(from: 1, to: 2, term: term)])
            term += 1
            return !secondLife.all.isEmpty
        }
        #expect(await a.counters().connectionsEstablished >= 2)
        await a.shutdown()
        await restarted.shutdown()
        try await group.shutdownGracefully()
    }

    /// Membership changes add servers after start; a daemon may also repeat addresses it
    /// already gave (its gossip view), which must not cut the connection.
    @Test func peersAreAddedKeptMovedAndRemovedAtRuntime() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let atOldAddress = ReceivedMessages()
        let atNewAddress = ReceivedMessages()
        let old = try await startTransport(id: 2, group: group, received: atOldAddress)
        let moved = try await startTransport(id: 2, group: group, received: atNewAddress)
        let a = try await startTransport(id: 1, group: group, received: ReceivedMessages())

        a.send([heartbeat(from: 1, to: 2, term: 1)])
        #expect(await a.counters().messagesDroppedUnknownPeer == 1)

        // setPeer and send run in order on the transport's loop.
        a.setPeer(NodeID(2), address: PeerAddress(host: loopback, port: old.listenPort))
        a.send([heartbeat(from: 1, to: 2, term: 2)])
        try await eventually("the added peer receives") { atOldAddress.all.count == 1 }

        a.setPeer(NodeID(2), address: PeerAddress(host: loopback, port: old.listenPort))
        a.send([heartbeat(from: 1, to: 2, term: 3)])
        try await eventually("the peer receives over the same connection") { atOldAddress.all.count == 2 }
        #expect(await a.counters().connectAttempts == 1, "the same address again reconnected")

        a.setPeer(NodeID(2), address: PeerAddress(host: loopback, port: moved.listenPort))
        a.send([heartbeat(from: 1, to: 2, term: 4)])
        try await eventually("the peer receives at its new address") { atNewAddress.all.count == 1 }
        #expect(atNewAddress.all.map(\.term) == [4])
        #expect(await a.counters().connectAttempts == 2)

        a.setPeer(NodeID(2), address: nil)
        a.send([heartbeat(from: 1, to: 2, term: 5)])
        #expect(await a.counters().messagesDroppedUnknownPeer == 2)
        #expect(atOldAddress.all.map(\.term) == [2, 3])
        await a.shutdown()
        await old.shutdown()
        await moved.shutdown()
        try await group.shutdownGracefully()
    }

    @Test func aFullSendQueueDropsTheNewestAndCountsIt() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        // A port that nobody listens on: bind one, note it, close it.
        let probe = try await ServerBootstrap(group: group).bind(host: loopback, port: 0).get()
        let deadPort = probe.localAddress!.port!
        try await probe.close()

        let a = try await startTransport(id: 1, peers: [NodeID(2): PeerAddress(host: loopback, port: deadPort)],
                                         group: group, sendQueueMessagesMax: 8, received: ReceivedMessages())
        a.send((1...13).map { heartbeat(from: 1, to: 2, term: UInt64($0)) })
        a.send([heartbeat(from: 1, to: 9, term: 1)])
        try await eventually("drops counted") {
            let counters = await a.counters()
            return counters.messagesDroppedQueueFull == 5 && counters.messagesDroppedUnknownPeer == 1
        }
        try await eventually("reconnect attempts go on") { await a.counters().connectFailures >= 2 }
        await a.shutdown()
        try await group.shutdownGracefully()
    }

    @Test func invalidConfigurationIsATypedError() {
        #expect(throws: TransportError.self) {
            try TransportConfiguration(localID: NodeID(1), listenAddress: PeerAddress(host: loopback, port: 0),
                                       peers: [NodeID(1): PeerAddress(host: loopback, port: 1)])
        }
        #expect(throws: TransportError.self) {
            try TransportConfiguration(localID: NodeID(1), listenAddress: PeerAddress(host: loopback, port: 0),
                                       peers: [:], reconnectDelayMin: .seconds(2), reconnectDelayMax: .seconds(1))
        }
    }
}

@Suite(.onBackgroundThreads) struct ReconnectBackoffTests {
    @Test func delaysGrowExponentiallyUpToTheCapWithJitterFromTheSeed() {
        var backoff = ReconnectBackoff(delayMin: .milliseconds(10), delayMax: .milliseconds(1000), seed: 42)
        var delays: [Int64] = []
        for _ in 0..<20 { delays.append(backoff.nextDelay().nanoseconds) }
        for (attempt, delay) in delays.enumerated() {
            let ceiling = min(1_000_000_000, 10_000_000 << min(attempt, 20))
            #expect(delay >= Int64(ceiling / 2) && delay <= Int64(ceiling), "attempt \(attempt): \(delay)")
        }
        var replay = ReconnectBackoff(delayMin: .milliseconds(10), delayMax: .milliseconds(1000), seed: 42)
        #expect((0..<20).map { _ in replay.nextDelay().nanoseconds } == delays)
        backoff.reset()
        #expect(backoff.nextDelay().nanoseconds <= 10_000_000)
    }
}
