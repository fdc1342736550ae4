import Membership

func memberID(_ n: Int) -> MemberID { MemberID("m\(n)") }
func address(_ n: Int) -> MemberAddress { MemberAddress(host: "10.0.0.\(n)", port: 7946) }

func makeMember(_ n: Int, incarnation: Incarnation = 0, metadata: [String: String] = [:]) -> Member {
    Member(id: memberID(n), address: address(n), metadata: MemberMetadata(metadata), role: .agent,
           version: "1.0", incarnation: incarnation)
}

func ms(_ value: Int64) -> MonotonicInstant { MonotonicInstant(milliseconds: value) }

func makeInstance(_ n: Int = 1, configuration: MembershipConfiguration = .lan, seed: UInt64 = 1,
                  incarnation: Incarnation = 0) -> MembershipInstance {
    try! MembershipInstance(localMember: makeMember(n, incarnation: incarnation), configuration: configuration,
                            random: MembershipRandom(seed: seed), now: .zero)
}

/// An instance that already knows members 2...count (learned through gossip at time 0).
func makeInstanceKnowing(_ count: Int, configuration: MembershipConfiguration = .lan, seed: UInt64 = 1,
                         incarnation: Incarnation = 0) -> MembershipInstance {
    var instance = makeInstance(1, configuration: configuration, seed: seed, incarnation: incarnation)
    let gossip = (2...max(2, count)).map { Gossip.alive(makeMember($0)) }
    _ = instance.onMessage(MembershipMessage(.gossip, gossip: gossip), from: address(2), now: .zero)
    return instance
}

extension MembershipInstance {
    mutating func receive(_ gossip: Gossip..., from sender: Int = 9, now: MonotonicInstant = .zero) -> [MessageDirective] {
        onMessage(MembershipMessage(.gossip, gossip: gossip), from: address(sender), now: now)
    }

    /// Ticks at every deadline up to and including `end`, collecting the directives.
    mutating func run(until end: MonotonicInstant) -> [TickDirective] {
        var all: [TickDirective] = []
        var steps = 0
        while nextDeadline <= end {
            all += onTick(now: nextDeadline)
            steps += 1
            precondition(steps < 100_000, "deadline stuck at \(nextDeadline)")
        }
        return all
    }
}

extension Array where Element == TickDirective {
    var sent: [(MembershipMessage, MemberAddress)] {
        compactMap { if case .send(let m, let a) = $0 { return (m, a) } else { return nil } }
    }
    var changes: [MemberChange] {
        compactMap { if case .memberChanged(let c) = $0 { return c } else { return nil } }
    }
}

extension Array where Element == MessageDirective {
    var sent: [(MembershipMessage, MemberAddress)] {
        compactMap { if case .send(let m, let a) = $0 { return (m, a) } else { return nil } }
    }
    var changes: [MemberChange] {
        compactMap { if case .memberChanged(let c) = $0 { return c } else { return nil } }
    }
}

extension MembershipMessage {
    var pingSequence: UInt32? { if case .ping(let p) = body { return p.sequenceNumber } else { return nil } }
    var pingRequest: PingRequest? { if case .pingRequest(let p) = body { return p } else { return nil } }
    var pushPull: PushPull? { if case .pushPull(let p) = body { return p } else { return nil } }
}
