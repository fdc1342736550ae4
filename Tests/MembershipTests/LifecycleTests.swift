import TestSupport
import Membership
import Testing

/// Join, push-pull, leave, rejoin, retention, dissemination bounds.
@Suite(.onBackgroundThreads) struct LifecycleTests {
    /// Delivers every message between a set of instances instantly until quiet (a tiny network).
    struct Mesh {
        var nodes: [Int: MembershipInstance] = [:]
        var queue: [(MembershipMessage, from: Int, to: Int)] = []
        var now = MonotonicInstant.zero
        /// Messages to members outside the mesh (crashed or cut off), with when they were sent.
        var undelivered: [(at: MonotonicInstant, message: MembershipMessage, from: Int, to: Int)] = []

        mutating func enqueue(_ sends: [(MembershipMessage, MemberAddress)], from: Int) {
            for (message, to) in sends {
                let target = Int(to.host.split(separator: ".").last!)!
                queue.append((message, from, target))
            }
        }

        mutating func deliverAll() {
            var steps = 0
            while !queue.isEmpty && steps < 10_000 {
                steps += 1
                let (message, from, to) = queue.removeFirst()
                guard nodes[to] != nil else {
                    undelivered.append((now, message, from, to))
                    continue
                }
                let out = nodes[to]!.onMessage(message, from: address(from), now: now)
                enqueue(out.sent, from: to)
            }
        }

        mutating func advance(to end: MonotonicInstant) {
            while true {
                let due = nodes.keys.sorted().map { ($0, nodes[$0]!.nextDeadline) }.min { $0.1 < $1.1 }
                guard let (n, at) = due, at <= end else { break }
                now = max(now, at)
                enqueue(nodes[n]!.onTick(now: now).sent, from: n)
                deliverAll()
            }
            now = end
        }
    }

    @Test func joinThroughASeedLearnsTheCluster() {
        var mesh = Mesh()
        for n in 1...4 { mesh.nodes[n] = makeInstance(n, seed: UInt64(n)) }
        for n in 2...4 {
            let out = mesh.nodes[n]!.join(seeds: [address(1)], now: .zero)
            mesh.enqueue(out.compactMap { if case .send(let m, let a) = $0 { (m, a) } else { nil } }, from: n)
            mesh.deliverAll()
        }
        mesh.advance(to: ms(5_000))
        for n in 1...4 {
            #expect(mesh.nodes[n]!.members.filter { $0.status == .alive }.count == 4, "member \(n)")
        }
    }

    // memberlist mergeState: alive stays alive, left stays left, a remote "dead" becomes a local
    // suspicion, and a dead verdict about ourselves is refuted.
    @Test func pushPullMergeTurnsRemoteDeathIntoSuspicionAndAnswers() {
        var a = makeInstanceKnowing(4)
        var dead3 = makeMember(3); dead3.status = .dead
        var left4 = makeMember(4); left4.status = .left
        var deadSelf = makeMember(1, incarnation: 2); deadSelf.status = .dead
        let remote = [makeMember(2), dead3, left4, deadSelf, makeMember(5)]
        let out = a.onMessage(MembershipMessage(.pushPull(PushPull(kind: .request, members: remote))),
                              from: address(2), now: ms(10))
        #expect(a.member(memberID(2))?.status == .alive)
        #expect(a.member(memberID(3))?.status == .suspect)
        #expect(a.member(memberID(4))?.status == .left)
        #expect(a.member(memberID(5))?.status == .alive)
        #expect(a.localMember.incarnation == 3)
        let response = out.sent.compactMap { $0.0.pushPull }.first
        #expect(response?.kind == .response)
        #expect(response?.members.first == a.localMember, "the answer carries the refutation")
        #expect(response?.members.count == 5)
    }

    @Test func gracefulLeaveIsNotReportedAsFailure() {
        var a = makeInstanceKnowing(3)
        var b = makeInstanceKnowing(3, seed: 3)
        let goodbye = a.leave(now: ms(10)).compactMap { if case .send(let m, let to) = $0 { (m, to) } else { nil } }
        #expect(!goodbye.isEmpty)
        #expect(goodbye.allSatisfy { $0.0.gossip.contains(.dead(memberID(1), incarnation: 0, from: memberID(1))) })
        // b is instance 1 as well; make a second view: member 2 receiving the goodbye.
        var two = makeInstance(2)
        _ = two.receive(.alive(makeMember(1)), from: 1)
        let changes = two.onMessage(goodbye[0].0, from: address(1), now: ms(11)).changes
        #expect(changes.first?.member.status == .left && changes.first?.previousStatus == .alive)
        // The leaver stops probing.
        #expect(a.run(until: ms(10_000)).sent.allSatisfy { $0.0.pingSequence == nil && $0.0.pingRequest == nil })
        _ = b
        b = makeInstance()
    }

    // A restarted machine starts again at incarnation 0; it finds its old, higher incarnation (or
    // its own death) in the seed's state and refutes it, and the cluster takes it back.
    @Test func restartedMachineRejoinsWithHigherIncarnation() {
        var mesh = Mesh()
        mesh.nodes[1] = makeInstance(1)
        mesh.nodes[2] = makeInstance(2, seed: 2)
        // Node 1 knows node 2 died at incarnation 3.
        _ = mesh.nodes[1]!.receive(.alive(makeMember(2, incarnation: 3)))
        _ = mesh.nodes[1]!.receive(.dead(memberID(2), incarnation: 3, from: memberID(1)))
        #expect(mesh.nodes[1]!.member(memberID(2))?.status == .dead)
        let out = mesh.nodes[2]!.join(seeds: [address(1)], now: .zero)
        mesh.enqueue(out.compactMap { if case .send(let m, let a) = $0 { (m, a) } else { nil } }, from: 2)
        mesh.deliverAll()
        #expect(mesh.nodes[2]!.localMember.incarnation == 4)
        mesh.advance(to: ms(3_000))
        #expect(mesh.nodes[1]!.member(memberID(2))?.status == .alive)
        #expect(mesh.nodes[1]!.member(memberID(2))?.incarnation == 4)
    }

    // A machine that left cleanly (a reboot) comes back: the seed holds its own goodbye, which
    // it refutes like any other verdict, and the cluster takes it back. Unrefuted, it stayed out
    // of the member list after the reboot (seen on the test bed).
    @Test func aMemberThatLeftCleanlyRejoinsAfterItsRestart() {
        var mesh = Mesh()
        mesh.nodes[1] = makeInstance(1)
        mesh.nodes[2] = makeInstance(2, seed: 2)
        _ = mesh.nodes[1]!.receive(.alive(makeMember(2, incarnation: 3)))
        _ = mesh.nodes[1]!.receive(.dead(memberID(2), incarnation: 3, from: memberID(2)))
        #expect(mesh.nodes[1]!.member(memberID(2))?.status == .left)
        let out = mesh.nodes[2]!.join(seeds: [address(1)], now: .zero)
        mesh.enqueue(out.compactMap { if case .send(let m, let a) = $0 { (m, a) } else { nil } }, from: 2)
        mesh.deliverAll()
        #expect(mesh.nodes[2]!.localMember.incarnation == 4)
        mesh.advance(to: ms(3_000))
        #expect(mesh.nodes[1]!.member(memberID(2))?.status == .alive)
    }

    @Test func joinRetriesUntilASeedAnswers() {
        var a = makeInstance(2)
        let first = a.join(seeds: [address(1), address(2)], now: .zero)
        #expect(first.filter { if case .send = $0 { true } else { false } }.count == 1, "own address is skipped")
        let retries = a.run(until: ms(5_000)).sent.filter { $0.0.pushPull?.kind == .join }
        #expect(retries.count == 1)
        _ = a.onMessage(MembershipMessage(.pushPull(PushPull(kind: .response, members: [makeMember(1)]))),
                        from: address(1), now: ms(5_001))
        #expect(a.run(until: ms(20_000)).sent.allSatisfy { $0.0.pushPull?.kind != .join })
    }

    @Test func deadMemberIsForgottenAfterRetention() throws {
        let configuration = try MembershipConfiguration(deadRetentionMilliseconds: 60_000)
        var a = makeInstanceKnowing(3, configuration: configuration)
        _ = a.receive(.dead(memberID(2), incarnation: 0, from: memberID(3)), now: ms(1_000))
        let before = a.run(until: ms(60_999))
        #expect(!before.contains(.memberForgotten(memberID(2))))
        #expect(a.member(memberID(2))?.status == .dead)
        let after = a.run(until: ms(61_000))
        #expect(after.contains(.memberForgotten(memberID(2))))
        #expect(a.member(memberID(2)) == nil)
    }

    // The member table's own index (open addressing, entries shifted back on removal, records
    // swapped with the last on removal) must find every member after many arrivals and
    // forgettings in any order, and nothing that was forgotten.
    @Test func memberTableFindsEveryMemberAfterArrivalsAndForgetting() throws {
        let configuration = try MembershipConfiguration(deadRetentionMilliseconds: 1_000)
        var a = makeInstance(1, configuration: configuration)
        var random = MembershipRandom(seed: 7)
        var present = Set<Int>()
        var now: Int64 = 0
        for round in 0..<6 {
            let arrivals = (2...400).filter { _ in random.below(3) == 0 }
            _ = a.onMessage(MembershipMessage(.gossip, gossip: arrivals.map { .alive(makeMember($0, incarnation: UInt64(round))) }),
                            from: address(2), now: ms(now))
            present.formUnion(arrivals)
            let deaths = present.sorted().filter { _ in random.below(2) == 0 }
            for n in deaths { _ = a.receive(.dead(memberID(n), incarnation: UInt64(round), from: memberID(9)), now: ms(now)) }
            now += 1_001
            _ = a.run(until: ms(now))
            // Ticks may declare more members dead (their probes go unanswered here); read the table.
            let forgotten = present.filter { a.member(memberID($0)) == nil }
            #expect(forgotten.isSuperset(of: deaths), "round \(round)")
            present.subtract(forgotten)
            for n in 2...400 {
                let found = a.member(memberID(n))
                #expect((found != nil) == present.contains(n), "round \(round), member \(n)")
                if let found { #expect(found.id == memberID(n) && found.address == address(n)) }
            }
        }
        #expect(a.memberCount - 1 <= present.count)
    }

    @Test func metadataChangeSpreadsWithNewIncarnation() throws {
        var a = makeInstanceKnowing(2)
        _ = try a.updateLocalMember(metadata: MemberMetadata(["region": "eu"]), now: ms(1))
        #expect(a.localMember.incarnation == 1)
        var b = makeInstance(2)
        _ = b.receive(.alive(makeMember(1)))
        let ping = a.tickUntilPing()
        _ = ping
        let sent = a.run(until: ms(3_000)).sent.flatMap { $0.0.gossip }
        let update = sent.first { if case .alive(let m) = $0 { m.id == memberID(1) && m.incarnation == 1 } else { false } }!
        _ = b.receive(update)
        #expect(b.member(memberID(1))?.metadata["region"] == "eu")
        #expect(throws: MembershipError.self) {
            _ = try a.updateLocalMember(metadata: MemberMetadata(["k": String(repeating: "x", count: 600)]), now: ms(2))
        }
    }

    // SWIM §4.1 / memberlist: every datagram stays within one UDP packet, and each update is
    // retransmitted at most multiplier × ceil(log10(N + 1)) times.
    @Test func piggybackNeverExceedsPacketBudgetAndRespectsRetransmitLimit() {
        var a = makeInstanceKnowing(300)
        #expect(a.pendingBroadcastCount == 300)
        var transmissions: [Gossip: Int] = [:]
        for (message, _) in a.run(until: ms(120_000)).sent where !message.isStream {
            #expect(MembershipCodec.encode(message).count <= 1_400)
            for entry in message.gossip { transmissions[entry, default: 0] += 1 }
        }
        // N = 300: limit = 4 × ceil(log10(301)) = 12.
        let alive = transmissions.filter { if case .alive = $0.key { true } else { false } }
        #expect(alive.count == 300)
        #expect(alive.values.max() == 12, "a later suspicion may replace an alive update early, never extend it")
    }

    // The faster LAN preset is the documented one, and its suspicion timeouts are what its doc
    // comment promises (3 × max(1, log10 N) × 0.5 s, reached after one confirmation).
    @Test func fastLANProfileIsTheDocumentedPreset() {
        let fast = MembershipConfiguration.fastLAN
        #expect(fast.probeIntervalMilliseconds == 500 && fast.probeTimeoutMilliseconds == 250)
        #expect(fast.suspicionMultiplier == 3)
        #expect(fast.suspicionTimeoutMinMilliseconds(memberCount: 5) == 1_500)
        #expect(fast.suspicionTimeoutMinMilliseconds(memberCount: 100) == 3_000)
        #expect(fast.suspicionTimeoutMinMilliseconds(memberCount: 1_000) == 4_500)
        // Apart from those three, it is memberlist's LAN configuration.
        let lanWithFastTimers = try? MembershipConfiguration(probeIntervalMilliseconds: 500, probeTimeoutMilliseconds: 250,
                                                             suspicionMultiplier: 3)
        #expect(lanWithFastTimers == fast)
    }

    @Test func configurationRejectsImpossibleRelations() {
        #expect(throws: MembershipConfigurationError.self) { try MembershipConfiguration(probeTimeoutMilliseconds: 1_000) }
        #expect(throws: MembershipConfigurationError.self) { try MembershipConfiguration(maximumPacketBytes: 600) }
        #expect(throws: MembershipConfigurationError.self) { try MembershipConfiguration(membersMax: 0) }
        let lan = MembershipConfiguration.lan
        #expect(lan.retransmitLimit(memberCount: 1_000) == 16)
        #expect(lan.suspicionTimeoutMinMilliseconds(memberCount: 1_000) == 12_000)
        #expect(lan.pushPullIntervalMilliseconds(memberCount: 10) == 30_000)
        #expect(lan.pushPullIntervalMilliseconds(memberCount: 1_000) == 6 * 30_000)
    }

    @Test func membersBeyondTheBoundAreRefused() throws {
        let configuration = try MembershipConfiguration(membersMax: 5)
        let a = makeInstanceKnowing(20, configuration: configuration)
        #expect(a.members.count == 6)
    }

    /// Reconnect requests (push-pull requests) that member `from` sent to member `to`.
    static func reconnects(in mesh: Mesh, from: Int, to: Int) -> [MonotonicInstant] {
        mesh.undelivered.filter { $0.from == from && $0.to == to && $0.message.pushPull?.kind == .request }.map(\.at)
    }

    /// A mesh of the given members, each knowing all of `known`, with `dead` declared dead everywhere.
    static func meshKnowing(_ known: [Int], running: [Int], dead: [Int], seed: UInt64) -> Mesh {
        var mesh = Mesh()
        for n in running {
            var node = makeInstance(n, seed: seed &+ UInt64(n))
            _ = node.onMessage(MembershipMessage(.gossip, gossip: known.filter { $0 != n }.map { .alive(makeMember($0)) }),
                               from: address(9), now: .zero)
            for d in dead { _ = node.receive(.dead(memberID(d), incarnation: 0, from: memberID(9))) }
            mesh.nodes[n] = node
        }
        return mesh
    }

    // The cut-off side of a partition knows no live member: nobody probes or gossips to it any
    // more, so it looks for the others itself, every probe interval, until one answers; first
    // among the members it still suspects, then among those it holds dead.
    @Test func memberThatSuspectsAllOthersReconnectsEveryProbeInterval() {
        var suspecting = Self.meshKnowing([1, 2, 3], running: [1], dead: [], seed: 1)
        for n in [2, 3] { _ = suspecting.nodes[1]!.receive(.suspect(memberID(n), incarnation: 0, from: memberID(9))) }
        // The suspicions (4 s at this size) have not run out by then.
        suspecting.advance(to: ms(3_500))
        #expect(suspecting.nodes[1]!.members.filter { $0.status == .suspect }.count == 2)
        let attempts = Self.reconnects(in: suspecting, from: 1, to: 2) + Self.reconnects(in: suspecting, from: 1, to: 3)
        #expect(attempts.count >= 3, "\(attempts)")
    }

    @Test func memberThatKnowsNoLiveMemberReconnectsEveryProbeInterval() {
        var alone = Self.meshKnowing([1, 2, 3], running: [1], dead: [2, 3], seed: 1)
        alone.advance(to: ms(5_000))
        let attempts = Self.reconnects(in: alone, from: 1, to: 2) + Self.reconnects(in: alone, from: 1, to: 3)
        #expect(attempts.count >= 5, "\(attempts)")
        let sorted = attempts.sorted()
        for (earlier, later) in zip(sorted, sorted.dropFirst()) {
            #expect(later.milliseconds(since: earlier) >= MembershipConfiguration.lan.probeIntervalMilliseconds)
        }
        // With a live peer answering, only the periodic reconnect (at most one in 30 s) is made.
        var accompanied = Self.meshKnowing([1, 2, 3], running: [1, 3], dead: [2], seed: 1)
        accompanied.advance(to: ms(5_000))
        #expect(Self.reconnects(in: accompanied, from: 1, to: 2).count <= 1)
    }

    // Members started together must not reconnect in the same instant every interval: the first
    // attempt is at a random phase of the interval, like push-pull's.
    @Test func periodicReconnectStartsAtARandomPhase() {
        var firstAttempts: [Int64] = []
        for seed in UInt64(1)...16 {
            var mesh = Self.meshKnowing([1, 2, 3], running: [1, 3], dead: [2], seed: seed * 101)
            mesh.advance(to: ms(31_000))
            let first = Self.reconnects(in: mesh, from: 1, to: 2).min()
            #expect(first != nil, "seed \(seed)")
            if let first { firstAttempts.append(first.milliseconds) }
        }
        #expect(firstAttempts.allSatisfy { $0 <= MembershipConfiguration.lan.reconnectIntervalMilliseconds })
        #expect(Set(firstAttempts).count >= 8, "\(firstAttempts)")
    }

}
