import Membership
import NIOCore
import NIOPosix
import Testing

@testable import MembershipShell

/// Every queue and connection count of the shell is bounded, and what goes over a bound is counted.
@Suite("Membership shell bounds")
struct BoundsTests {
    @Test func silentConnectionsAreClosedAtTheDeadlineAndExtraOnesRefused() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let configuration = MembershipShellConfiguration(
            bindHost: loopback, bindPort: 0, memberID: MemberID("bounded"), membership: fastMembership,
            // The deadline must outlast the gap between the first connection's acceptance and the
            // second's arrival, which includes how long this task waits for a thread of the
            // cooperative pool. 300 ms and 3 s lost that race in full runs while the membership
            // simulations held the two-thread pool (then 60 s was used); they now run on threads
            // of their own (MembershipSimulationTests.onDedicatedThread), so a few seconds suffice.
            randomSeed: 41, streamTimeout: .seconds(5), inboundStreamsMax: 1)
        let shell = try await MembershipShell.start(configuration: configuration, eventLoop: group.next())
        let port = Int(shell.localAddress.port)
        let silent = try await ClientBootstrap(group: group).connect(to: try SocketAddress(ipAddress: loopback, port: port)).get()
        try await eventually("the first connection is accepted") { await shell.counters().streamsAccepted == 1 }
        let extra = try await ClientBootstrap(group: group).connect(to: try SocketAddress(ipAddress: loopback, port: port)).get()
        try await extra.closeFuture.get()
        try await silent.closeFuture.get()
        let counters = await shell.counters()
        #expect(counters.streamsRefusedOverLimit == 1)
        #expect(counters.streamsTimedOut == 1)
        await shell.stop()
        try await group.shutdownGracefully()
    }

    /// One host holding connections open takes its share of the stream slots, not all of them:
    /// a member at another address still joins through the same port.
    @Test func oneAddressTakesAtMostItsShareOfStreamSlots() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let configuration = MembershipShellConfiguration(
            bindHost: loopback, bindPort: 0, memberID: MemberID("shared"), membership: fastMembership,
            randomSeed: 71, streamTimeout: .seconds(30), inboundStreamsMax: 8, inboundStreamsPerAddressMax: 3)
        let shell = try await MembershipShell.start(configuration: configuration, eventLoop: group.next())
        let port = Int(shell.localAddress.port)
        var held: [any Channel] = []
        // From 127.0.0.3 (loopback too), so that the member below, which connects from 127.0.0.1, is another address.
        let greedy = try SocketAddress(ipAddress: "127.0.0.3", port: 0)
        for _ in 0..<10 { held.append(try await ClientBootstrap(group: group).bind(to: greedy).connect(to: try SocketAddress(ipAddress: loopback, port: port)).get()) }
        try await eventually("7 of 10 refused by address") { await shell.counters().streamsRefusedPerAddress == 7 }
        try await eventually("the refused ones closed") { held.filter(\.isActive).count == 3 }
        #expect(await shell.counters().streamsRefusedOverLimit == 0)

        // A member at another address joins through the same port meanwhile.
        let joiner = try await MembershipShell.start(configuration: MembershipShellConfiguration(
            bindHost: loopback, bindPort: 0, memberID: MemberID("other-address"), membership: fastMembership, randomSeed: 72),
            eventLoop: group.next())
        try await joiner.join(seeds: [shell.localAddress])
        try await eventually("the member at another address joined") { try await allAlive([shell, joiner], count: 2) }
        let counters = await shell.counters()
        #expect(counters.streamsRefusedPerAddress == 7 && counters.streamsAccepted >= 4, "\(counters)")
        for channel in held { try? await channel.close() }
        await joiner.stop()
        await shell.stop()
        try await group.shutdownGracefully()
    }

    /// With a keyring, a flood of silent connections that fills every stream slot (here from
    /// one address whose share is above the limit, standing for many addresses) does not keep a
    /// member out: its stream pushes out the oldest one that never sent a request, and it joins.
    @Test func withAKeyringAFullPortMakesRoomForAMemberByClosingTheOldestSilentStream() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let keyring = try GossipKeyring(keys: [GossipKeyring.generateKey()])
        let configuration = MembershipShellConfiguration(
            bindHost: loopback, bindPort: 0, memberID: MemberID("flooded"), membership: fastMembership,
            randomSeed: 81, keyring: keyring, streamTimeout: .seconds(60), inboundStreamsMax: 4, inboundStreamsPerAddressMax: 64)
        let shell = try await MembershipShell.start(configuration: configuration, eventLoop: group.next())
        let port = Int(shell.localAddress.port)
        var held: [any Channel] = []
        let flooder = try SocketAddress(ipAddress: "127.0.0.3", port: 0)
        for _ in 0..<4 { held.append(try await ClientBootstrap(group: group).bind(to: flooder).connect(to: try SocketAddress(ipAddress: loopback, port: port)).get()) }
        try await eventually("the four silent streams admitted") { await shell.counters().streamsAccepted == 4 }

        let joiner = try await MembershipShell.start(configuration: MembershipShellConfiguration(
            bindHost: loopback, bindPort: 0, memberID: MemberID("member"), membership: fastMembership, randomSeed: 82, keyring: keyring),
            eventLoop: group.next())
        try await joiner.join(seeds: [shell.localAddress])
        try await eventually("the member joined through the full port") { try await allAlive([shell, joiner], count: 2) }
        let counters = await shell.counters()
        #expect(counters.streamsEvictedAwaitingRequest >= 1, "\(counters)")
        #expect(counters.streamsRefusedOverLimit == 0, "\(counters)")
        // The oldest silent one went first.
        try await eventually("the oldest silent stream closed") { !held[0].isActive }
        for channel in held { try? await channel.close() }
        await joiner.stop()
        await shell.stop()
        try await group.shutdownGracefully()
    }

    @Test func eventsBeyondTheBufferAreDroppedAndCountedWhileMembersStayCurrent() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let configuration = MembershipShellConfiguration(
            bindHost: loopback, bindPort: 0, memberID: MemberID("slow-reader"), membership: fastMembership,
            randomSeed: 51, memberEventsBufferMax: 1)
        let reader = try await MembershipShell.start(configuration: configuration, eventLoop: group.next())
        let others = [try await startShell("o1", group: group, seed: 52), try await startShell("o2", group: group, seed: 53)]
        for other in others { try await other.join(seeds: [reader.localAddress]) }
        // Nobody reads `reader.memberEvents`: one event fits, the second is dropped and counted.
        try await eventually("all alive") { try await allAlive([reader] + others, count: 3) }
        #expect(await reader.counters().memberEventsDropped >= 1)
        for shell in [reader] + others { await shell.stop() }
        var delivered = 0
        for await _ in reader.memberEvents { delivered += 1 }
        #expect(delivered == 1)
        try await group.shutdownGracefully()
    }

    @Test func joinAndLeaveAfterStopDoNothing() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let shell = try await startShell("stopped", group: group, seed: 61)
        await shell.stop()
        await shell.stop()
        try await shell.join(seeds: [MemberAddress(host: loopback, port: 9)])
        try await shell.leave()
        #expect(await shell.counters().streamsOpened == 0)
        try await group.shutdownGracefully()
    }
}
