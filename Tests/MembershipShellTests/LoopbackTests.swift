import Membership
import NIOCore
import NIOPosix
import Locking
import Testing

@testable import MembershipShell

let loopback = "127.0.0.1"

/// memberlist LAN shrunk fivefold so that failures are detected in about a second; the
/// relations between the values are the LAN ones.
let fastMembership = try! MembershipConfiguration(
    probeIntervalMilliseconds: 200, probeTimeoutMilliseconds: 100, gossipIntervalMilliseconds: 50,
    pushPullIntervalMilliseconds: 2_000, reconnectIntervalMilliseconds: 1_000,
    joinRetryIntervalMilliseconds: 500)

/// Polls `condition` until it holds or `timeout` passes. Generous bounds: they only catch hangs,
/// and the cooperative pool may be starved by CPU-bound suites running beside these.
func eventually(timeout: Duration = .seconds(60), _ what: String, _ condition: () async throws -> Bool) async throws {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if try await condition() { return }
        try await Task.sleep(for: .milliseconds(20))
    }
    Issue.record("timed out after \(timeout) waiting for: \(what)")
    throw CancellationError()
}

/// What one shell's `memberEvents` delivered, collected by a task of its own.
final class EventLog: Sendable {
    let events = Locked<[MembershipEvent]>([])

    func follow(_ shell: MembershipShell) -> Task<Void, Never> {
        Task {
            for await event in shell.memberEvents { events.withLock { $0.append(event) } }
        }
    }

    func contains(_ id: MemberID, _ status: MemberStatus) -> Bool {
        events.withLock { events in
            events.contains { if case .changed(let change) = $0 { change.member.id == id && change.member.status == status } else { false } }
        }
    }
}

func startShell(_ name: String, group: any EventLoopGroup, seed: UInt64) async throws -> MembershipShell {
    let configuration = MembershipShellConfiguration(
        bindHost: loopback, bindPort: 0, memberID: MemberID(name), metadata: MemberMetadata(["name": name]),
        membership: fastMembership, randomSeed: seed, streamTimeout: .seconds(5), leavePropagationMilliseconds: 300)
    return try await MembershipShell.start(configuration: configuration, eventLoop: group.next())
}

func status(of id: String, at shell: MembershipShell) async throws -> MemberStatus? {
    try await shell.members().first { $0.id == MemberID(id) }?.status
}

func allAlive(_ shells: [MembershipShell], count: Int) async throws -> Bool {
    for shell in shells {
        let members = try await shell.members()
        if members.count != count || !members.allSatisfy({ $0.status == .alive }) { return false }
    }
    return true
}

@Suite("Membership shell on loopback")
struct LoopbackTests {
    @Test func threeShellsSeeEachOtherAliveAndTheStoppedOneDead() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let shells = [try await startShell("m1", group: group, seed: 1),
                      try await startShell("m2", group: group, seed: 2),
                      try await startShell("m3", group: group, seed: 3)]
        let log = EventLog()
        let follower = log.follow(shells[0])
        try await shells[0].join(seeds: [])
        for shell in shells.dropFirst() { try await shell.join(seeds: [shells[0].localAddress]) }

        try await eventually("every shell sees all three alive") { try await allAlive(shells, count: 3) }
        // The log is filled by a task reading m1's event stream, which may trail what members()
        // answers: wait for the event, do not race it (soak load: ".dead" was not yet read when
        // both shells already reported m3 dead).
        try await eventually("m1's events say m3 is alive") { log.contains(MemberID("m3"), .alive) }
        let m1 = try await shells[0].members().first { $0.id == MemberID("m1") }
        #expect(m1?.metadata["name"] == "m1")

        // A stop without leave is a crash as far as the others can tell.
        await shells[2].stop()
        try await eventually("m1 and m2 see m3 dead") {
            let seenBy1 = try await status(of: "m3", at: shells[0])
            let seenBy2 = try await status(of: "m3", at: shells[1])
            return seenBy1 == .dead && seenBy2 == .dead
        }
        try await eventually("m1's events say m3 is dead") { log.contains(MemberID("m3"), .dead) }
        #expect(log.contains(MemberID("m3"), .suspect), "SWIM §4.2: suspect before dead")
        #expect(try await status(of: "m2", at: shells[0]) == .alive)

        for shell in shells { await shell.stop() }
        await follower.value // the stream finishes on stop
        try await group.shutdownGracefully()
    }

    @Test func aGracefulLeaveIsSeenAsLeftNotDead() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let first = try await startShell("a", group: group, seed: 11)
        let second = try await startShell("b", group: group, seed: 12)
        try await second.join(seeds: [first.localAddress])
        try await eventually("both alive") { try await allAlive([first, second], count: 2) }
        try await second.leave()
        await second.stop()
        try await eventually("a sees b left") { try await status(of: "b", at: first) == .left }
        await first.stop()
        try await group.shutdownGracefully()
    }

    @Test func aRestartedMemberComesBackAliveWithAHigherIncarnation() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let first = try await startShell("r1", group: group, seed: 21)
        var second = try await startShell("r2", group: group, seed: 22)
        try await second.join(seeds: [first.localAddress])
        try await eventually("both alive") { try await allAlive([first, second], count: 2) }
        await second.stop()
        try await eventually("r1 sees r2 dead") { try await status(of: "r2", at: first) == .dead }
        // Same identity, new process state (incarnation 0), new port.
        second = try await startShell("r2", group: group, seed: 23)
        try await second.join(seeds: [first.localAddress])
        try await eventually("r1 sees r2 alive again at a higher incarnation") {
            let r2 = try await first.members().first { $0.id == MemberID("r2") }
            return r2?.status == .alive && (r2?.incarnation ?? 0) > 0 && r2?.address == second.localAddress
        }
        await first.stop()
        await second.stop()
        try await group.shutdownGracefully()
    }
}
