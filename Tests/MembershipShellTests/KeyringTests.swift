import Membership
import NIOCore
import NIOPosix
import Testing

@testable import MembershipShell

/// The keyring on its own: sealing, opening, rotation order, the file format.
@Suite("Gossip keyring")
struct GossipKeyringTests {
    let first = GossipKeyring.generateKey()
    let second = GossipKeyring.generateKey()

    @Test func aSealedMessageOpensWithTheSameKeyAndCarriesItsOverhead() throws {
        let keyring = try GossipKeyring(keys: [first])
        let message: [UInt8] = Array("ping 7".utf8)
        let sealed = keyring.seal(message, channel: .datagram)
        #expect(sealed.count == message.count + GossipKeyring.overheadBytes)
        #expect(sealed[0] == GossipKeyring.version)
        #expect(sealed[0] != MembershipCodec.version)
        #expect(keyring.open(sealed, channel: .datagram) == message)
        // Fresh nonce per message: the same plaintext never seals to the same bytes.
        #expect(keyring.seal(message, channel: .datagram) != sealed)
        #expect(keyring.open(keyring.seal([], channel: .stream), channel: .stream) == [])
    }

    @Test func everyFlippedBitIsRefused() throws {
        let keyring = try GossipKeyring(keys: [first])
        let sealed = keyring.seal(Array(0..<40), channel: .datagram)
        for index in sealed.indices {
            for bit in 0..<8 {
                var damaged = sealed
                damaged[index] ^= 1 << bit
                #expect(keyring.open(damaged, channel: .datagram) == nil, "byte \(index) bit \(bit)")
            }
        }
        #expect(keyring.open(Array(sealed.dropLast()), channel: .datagram) == nil)
        #expect(keyring.open(Array(sealed.prefix(GossipKeyring.overheadBytes - 1)), channel: .datagram) == nil)
        #expect(keyring.open([], channel: .datagram) == nil)
    }

    @Test func anotherKeyOrAnotherChannelDoesNotOpen() throws {
        let mine = try GossipKeyring(keys: [first])
        let theirs = try GossipKeyring(keys: [second])
        let sealed = mine.seal(Array("alive".utf8), channel: .stream)
        #expect(theirs.open(sealed, channel: .stream) == nil)
        // A frame captured from a stream does not open as a datagram (the channel is authenticated).
        #expect(mine.open(sealed, channel: .datagram) == nil)
        // Plain text, even a valid membership message, never opens.
        let plaintext = MembershipCodec.encode(MembershipMessage(.ping(Ping(sequenceNumber: 1, targetID: MemberID("x")))))
        #expect(mine.open(plaintext, channel: .datagram) == nil)
    }

    /// The rotation steps: installed (both open, old seals), used (new seals, old still opens),
    /// removed (only the new opens). At every step each member opens what every other sends.
    @Test func rotationKeepsEveryStepReadableByTheNeighbouringStep() throws {
        let old = try GossipKeyring(keys: [first])
        let installed = try GossipKeyring(keys: [first, second])
        let used = try GossipKeyring(keys: [second, first])
        let removed = try GossipKeyring(keys: [second])
        let steps = [old, installed, used, removed]
        for (index, sender) in steps.enumerated() {
            let sealed = sender.seal([1, 2, 3], channel: .datagram)
            for receiver in steps[max(0, index - 1)...min(steps.count - 1, index + 1)] {
                #expect(receiver.open(sealed, channel: .datagram) == [1, 2, 3], "step \(index) to a neighbour")
            }
        }
        #expect(removed.open(old.seal([9], channel: .datagram), channel: .datagram) == nil)
        #expect(old.open(removed.seal([9], channel: .datagram), channel: .datagram) == nil)
    }

    @Test func keyringsRefuseBadKeys() {
        #expect(throws: GossipKeyringError.empty) { try GossipKeyring(keys: []) }
        #expect(throws: GossipKeyringError.badKeyLength(index: 1, bytes: 16)) {
            try GossipKeyring(keys: [first, Array(repeating: 1, count: 16)])
        }
        #expect(throws: GossipKeyringError.duplicateKey(index: 1)) { try GossipKeyring(keys: [first, first]) }
        let nine = (0..<9).map { _ in GossipKeyring.generateKey() }
        #expect(throws: GossipKeyringError.tooManyKeys(count: 9, keysMax: 8)) { try GossipKeyring(keys: nine) }
    }

    @Test func theFileFormatRoundTripsAndNamesTheBadLine() throws {
        let keyring = try GossipKeyring(keys: [first, second])
        #expect(try GossipKeyring.parse(keyring.fileText()) == keyring)
        // `openssl rand -base64 32` output, with comments and blank lines around it.
        let text = "# cluster key\n\n  8nN2Yr3sXZqjXKk8Yq1m6yq8nT8xqfJ8p2Z3uQ7vW0Y=  \n"
        #expect(try GossipKeyring.parse(text).keys.count == 1)
        #expect(throws: GossipKeyringError.badLine(line: 2, reason: "not base64")) {
            try GossipKeyring.parse("# x\nnot-base64!\n")
        }
        #expect(throws: GossipKeyringError.badLine(line: 1, reason: "a key is 32 bytes (44 base64 characters), this one is 16")) {
            try GossipKeyring.parse("AAAAAAAAAAAAAAAAAAAAAA==\n")
        }
        #expect(throws: GossipKeyringError.empty) { try GossipKeyring.parse("# no key yet\n") }
        #expect(throws: GossipKeyringError.badLine(line: 2, reason: "the same key is listed twice")) {
            try GossipKeyring.parse(keyring.fileText().split(separator: "\n")[1] + "\n" + keyring.fileText().split(separator: "\n")[1])
        }
    }
}

func startKeyedShell(_ name: String, group: any EventLoopGroup, seed: UInt64, keyring: GossipKeyring?,
                     membership: MembershipConfiguration = fastMembership) async throws -> MembershipShell {
    let configuration = MembershipShellConfiguration(
        bindHost: loopback, bindPort: 0, memberID: MemberID(name), metadata: MemberMetadata(["name": name]),
        membership: membership, randomSeed: seed, keyring: keyring, streamTimeout: .seconds(5), leavePropagationMilliseconds: 300)
    return try await MembershipShell.start(configuration: configuration, eventLoop: group.next())
}

/// Probes as memberlist's LAN profile waits for them (500 ms for an ack), gossip as fast as the
/// other tests: the rotation test counts suspicions, and fastMembership's 100 ms ack deadline is
/// missed by a loopback member whose thread the host did not schedule in time (seen beside
/// test beds booting), which says nothing about the keys. Lost packets are counted apart.
let patientProbes = try! MembershipConfiguration(
    probeIntervalMilliseconds: 1_000, probeTimeoutMilliseconds: 500, gossipIntervalMilliseconds: 50,
    pushPullIntervalMilliseconds: 2_000, reconnectIntervalMilliseconds: 1_000, joinRetryIntervalMilliseconds: 500)

/// No probe runs within a test's seconds (the first comes after a minute, and waits 30 s for its
/// ack), so a member becomes suspect or dead only through gossip: for the tests of what forged
/// gossip can do. With fastMembership's 100 ms ack deadline, a loopback member whose thread the
/// host did not schedule in time was suspected and declared dead by the real failure detector
/// (seen in a fresh-clone run, 10 s into the suite, beside test beds booting), which the forged
/// dead test then took for the forgery's effect.
let gossipOnly = try! MembershipConfiguration(
    probeIntervalMilliseconds: 60_000, probeTimeoutMilliseconds: 30_000, gossipIntervalMilliseconds: 50,
    pushPullIntervalMilliseconds: 60_000, reconnectIntervalMilliseconds: 1_000, joinRetryIntervalMilliseconds: 500)

/// Two members sharing `key`, the second joined through the first, both seen alive.
func startKeyedPair(_ names: (String, String), seeds: (UInt64, UInt64), key: GossipKeyring,
                    group: any EventLoopGroup, membership: MembershipConfiguration = fastMembership) async throws -> (MembershipShell, MembershipShell) {
    let first = try await startKeyedShell(names.0, group: group, seed: seeds.0, keyring: key, membership: membership)
    let second = try await startKeyedShell(names.1, group: group, seed: seeds.1, keyring: key, membership: membership)
    try await first.join(seeds: [])
    try await second.join(seeds: [first.localAddress])
    try await eventually("\(names.0) and \(names.1) alive") { try await allAlive([first, second], count: 2) }
    return (first, second)
}

/// Shells with keyrings on loopback: members with the key form a cluster; anyone without it
/// (plain text, another cluster's key) is dropped before decoding and changes nothing.
@Suite("Membership shell with a keyring")
struct KeyedShellTests {
    @Test func membersWithTheKeyJoinAndStrangersAreDroppedUnread() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let key = try GossipKeyring(keys: [GossipKeyring.generateKey()])
        let (a, b) = try await startKeyedPair(("k1", "k2"), seeds: (41, 42), key: key, group: group)

        let plain = try await startKeyedShell("p3", group: group, seed: 43, keyring: nil)
        let other = try await startKeyedShell("o4", group: group, seed: 44, keyring: try GossipKeyring(keys: [GossipKeyring.generateKey()]))
        try await plain.join(seeds: [a.localAddress])
        try await other.join(seeds: [b.localAddress])
        // Their joins (push-pull streams) and retries reach the members and are refused unread.
        try await eventually("the strangers' joins were refused") {
            let refusedByA = await a.counters().streamFramesDroppedUnauthenticated
            let refusedByB = await b.counters().streamFramesDroppedUnauthenticated
            return refusedByA >= 1 && refusedByB >= 1
        }
        // Give them a few join retries (500 ms each) and probe rounds to get in, if they could.
        try await Task.sleep(for: .seconds(3))
        for shell in [a, b] {
            let ids = Set(try await shell.members().map(\.id))
            #expect(ids == [MemberID("k1"), MemberID("k2")])
        }
        #expect(try await plain.members().map(\.id) == [MemberID("p3")])
        #expect(try await other.members().map(\.id) == [MemberID("o4")])
        let counters = await a.counters()
        #expect(counters.garbageDropped == 0, "nothing unauthenticated reached the decoder: \(counters)")
        for shell in [a, b, plain, other] { await shell.stop() }
        try await group.shutdownGracefully()
    }

    /// The attack of issue 13: `dead(victim, from: victim)` makes every peer believe the victim
    /// left. Without the key it changes nothing; the same packet sealed with the key does (so
    /// the test would see it, were the key not checked).
    @Test func aForgedDeadWithoutTheKeyChangesNothing() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let key = try GossipKeyring(keys: [GossipKeyring.generateKey()])
        let (target, victim) = try await startKeyedPair(("t1", "v2"), seeds: (51, 52), key: key, group: group, membership: gossipOnly)
        let events = EventLog()
        let following = events.follow(target)

        let incarnation = try await victim.localMember().incarnation
        let forged = MembershipCodec.encode(MembershipMessage(.gossip, gossip: [
            .dead(MemberID("v2"), incarnation: incarnation + 5, from: MemberID("v2")),
            .suspect(MemberID("v2"), incarnation: incarnation + 5, from: MemberID("x9")),
        ]))
        let sender = try await DatagramBootstrap(group: group).bind(host: loopback, port: 0).get()
        let destination = try SocketAddress(ipAddress: loopback, port: Int(target.localAddress.port))
        func send(_ bytes: [UInt8]) async throws {
            var buffer = sender.allocator.buffer(capacity: bytes.count)
            buffer.writeBytes(bytes)
            try await sender.writeAndFlush(AddressedEnvelope(remoteAddress: destination, data: buffer)).get()
        }
        let wrongKey = try GossipKeyring(keys: [GossipKeyring.generateKey()])
        for _ in 0..<5 {
            try await send(forged)
            try await send(wrongKey.seal(forged, channel: .datagram))
            // A stream frame's bytes replayed as a datagram: the channel is authenticated.
            try await send(key.seal(forged, channel: .stream))
        }
        try await eventually("the 15 forged datagrams were counted") { await target.counters().datagramsDroppedUnauthenticated >= 15 }
        try await Task.sleep(for: .milliseconds(500))
        #expect(try await status(of: "v2", at: target) == .alive)
        #expect(!events.contains(MemberID("v2"), .dead) && !events.contains(MemberID("v2"), .left)
                && !events.contains(MemberID("v2"), .suspect))
        #expect(await target.counters().garbageDropped == 0)

        // The control: sealed with the cluster's key, the same bytes are believed.
        try await send(key.seal(forged, channel: .datagram))
        try await eventually("with the key, the forged leave is believed") {
            events.contains(MemberID("v2"), .left) || events.contains(MemberID("v2"), .dead)
        }

        following.cancel()
        try await sender.close()
        await target.stop()
        await victim.stop()
        try await group.shutdownGracefully()
    }

    /// Install, use, remove on three running members, one member at a time at each step (as an
    /// operator's rollout does): nobody is ever suspected, and the old key opens nothing after.
    @Test func aKeyRotationOnRunningMembersSuspectsNobody() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let old = GossipKeyring.generateKey()
        let new = GossipKeyring.generateKey()
        let shells = [
            try await startKeyedShell("r1", group: group, seed: 61, keyring: try GossipKeyring(keys: [old]),
                                   membership: patientProbes),
            try await startKeyedShell("r2", group: group, seed: 62, keyring: try GossipKeyring(keys: [old]),
                                   membership: patientProbes),
            try await startKeyedShell("r3", group: group, seed: 63, keyring: try GossipKeyring(keys: [old]),
                                   membership: patientProbes),
        ]
        try await shells[0].join(seeds: [])
        for shell in shells.dropFirst() { try await shell.join(seeds: [shells[0].localAddress]) }
        try await eventually("three alive") { try await allAlive(shells, count: 3) }
        let logs = shells.map { _ in EventLog() }
        let following = zip(logs, shells).map { $0.follow($1) }

        for step in [[old, new], [new, old], [new]] {
            for shell in shells {
                try await shell.setKeyring(try GossipKeyring(keys: step))
                // Some probe rounds (1 s) between members, so mixed states are exercised.
                try await Task.sleep(for: .milliseconds(1_500))
            }
        }
        try await Task.sleep(for: .seconds(1))
        #expect(try await allAlive(shells, count: 3))
        for (log, shell) in zip(logs, shells) {
            for id in ["r1", "r2", "r3"] {
                #expect(!log.contains(MemberID(id), .suspect), "\(shell.configuration.memberID) suspected \(id)")
            }
        }
        let dropped = await shells.asyncMap { await $0.counters().unauthenticatedDropped }
        #expect(dropped == [0, 0, 0])

        // A member still on the old key alone is now a stranger.
        let stale = try await startKeyedShell("r4", group: group, seed: 64, keyring: try GossipKeyring(keys: [old]),
                                   membership: patientProbes)
        try await stale.join(seeds: [shells[0].localAddress])
        try await eventually("the stale member's join was refused") { await shells[0].counters().streamFramesDroppedUnauthenticated >= 1 }
        #expect(try await shells[0].members().count == 3)

        for task in following { task.cancel() }
        for shell in shells + [stale] { await shell.stop() }
        try await group.shutdownGracefully()
    }

    @Test func aPlaintextMemberCannotSwitchToAKeyringAlone() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let plain = try await startKeyedShell("n1", group: group, seed: 71, keyring: nil)
        await #expect(throws: MembershipShellError.self) {
            try await plain.setKeyring(try GossipKeyring(keys: [GossipKeyring.generateKey()]))
        }
        #expect(try await plain.keyring() == nil)
        await plain.stop()
        try await group.shutdownGracefully()
    }
}

extension Array {
    func asyncMap<T>(_ transform: (Element) async throws -> T) async rethrows -> [T] {
        var results: [T] = []
        for element in self { results.append(try await transform(element)) }
        return results
    }
}
