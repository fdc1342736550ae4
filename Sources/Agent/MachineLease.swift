/// A voter as the lease protocol names it: the voter's public address, as the agents reach it.
public typealias VoterName = String

/// A voter's answer to one renewal (`LeaseLedger.renew`), carried back to the machine.
public enum LeaseAnswer: Hashable, Sendable {
    /// Granted at `epoch`. `voters` is the Raft configuration the granting voter is in (its
    /// voters, sorted): the machine counts a majority of every configuration its grants name.
    case granted(epoch: UInt64, voters: [VoterName])
    /// The machine's epoch in this voter's registry is newer: its lease was revoked (its units
    /// unplaced) or advanced (its units kept); the schedule of the new epoch says which.
    case revoked(currentEpoch: UInt64)
    /// This voter heard nothing from the machine for the expiry time and withheld the epoch for
    /// good; the machine gets a lease again only at the next epoch.
    case withheld(epoch: UInt64)
    /// Not a grant, and nothing the machine must act on: the voter is not a voter (`voters` then
    /// says who is, when it knows), has not applied the epoch yet, or its ledger is full.
    case notGranted(reason: String, voters: [VoterName])
    /// Another process of this machine ID, at `holder` (its public address), renewed this lease
    /// with this voter within the expiry time: two machines share one machine ID (a cloned
    /// image). Not a grant; the daemon refuses to go on (`IdentityGuard`).
    case heldElsewhere(holder: String)
}

/// What the machine's shell does after a lease event. The shell switches over every case.
public enum LeaseDirective: Hashable, Sendable {
    /// Make systemd's lease unit run until `deadlineMilliseconds` on this machine's monotonic
    /// clock (the one systemd times with), and no longer: the units bound to it stop then even if
    /// this process is frozen.
    case extendSystemdLease(deadlineMilliseconds: Int64)
    /// The lease is held (for the first time in this process, or again after a lapse): the
    /// agent may start units.
    case regained
    /// No majority granted a round for the lease time (this machine is cut off from the
    /// quorum): stop every unit now and start none until `regained`.
    case lapsed
}

/// One renewal round for the shell to send to every voter it knows.
public struct LeaseRound: Hashable, Sendable {
    public let number: UInt64
    public let epoch: UInt64
}

/// The machine's side of its lease (pure; time is the machine's monotonic clock, in ms).
///
/// Every `renewalInterval` the shell starts a round and sends it to every voter; each answer
/// comes back through `received`. A round holds when, for every configuration its grants name,
/// a majority of that configuration's voters granted it; it then extends the lease to the
/// round's *send* time plus the lease time, never later (see the Lease article for why the send
/// time). The epoch is the one of the schedule the agent runs (`adopt`): a grant at any other
/// epoch counts for nothing.
///
/// Phases: `unknown` until the first round holds in this process (a restarted daemon neither
/// starts nor stops anything then: systemd's lease, extended by the previous process, still
/// guards the units), `held` until the deadline, `lapsed` after it.
///
/// A newer epoch does not end a held lease: a revocation is decided only once every deadline
/// the machine could hold has passed, so a machine that still holds its lease when it learns of
/// a newer epoch is looking at an *advance* (its units kept), and its deadline stays good until
/// rounds of the new epoch extend it. The new epoch's schedule says what to run.
public struct MachineLease: Sendable {
    public enum Phase: Hashable, Sendable {
        case unknown
        case held(deadlineMilliseconds: Int64)
        case lapsed
    }

    struct Round: Sendable {
        let number: UInt64
        let epoch: UInt64
        let sentAtMilliseconds: Int64
        /// Granting voter -> the configuration it named.
        var grants: [VoterName: [VoterName]] = [:]
        var isHeld = false
    }

    public let timing: LeaseTiming
    public private(set) var epoch: UInt64?
    public private(set) var phase: Phase = .unknown
    /// The most recent rounds, oldest first; answers to older ones are dropped (they could only
    /// extend the lease less than a newer round would).
    private var rounds: [Round] = []
    private var nextRoundNumber: UInt64 = 1
    /// Rounds kept for late answers: with the interval at most a third of the lease, 16 rounds
    /// cover more than five leases.
    public static let roundsKeptMax = 16
    /// Voters one round counts; a configuration naming more is refused (Raft has 3 to 7).
    public static let votersPerConfigurationMax = 16

    public init(timing: LeaseTiming) {
        self.timing = timing
    }

    public func isHeld(nowMilliseconds: Int64) -> Bool {
        if case .held(let deadline) = phase { return nowMilliseconds < deadline }
        return false
    }

    /// The agent took a schedule of `epoch`: only rounds of it count from now on. An older
    /// epoch (a lagging voter's schedule) changes nothing.
    public mutating func adopt(epoch newEpoch: UInt64) {
        if let epoch, newEpoch <= epoch { return }
        epoch = newEpoch
        rounds.removeAll()
    }

    /// Starts a round, or nil while no schedule has told the epoch.
    public mutating func startRound(nowMilliseconds: Int64) -> LeaseRound? {
        guard let epoch else { return nil }
        let round = Round(number: nextRoundNumber, epoch: epoch, sentAtMilliseconds: nowMilliseconds)
        nextRoundNumber += 1
        rounds.append(round)
        if rounds.count > Self.roundsKeptMax { rounds.removeFirst(rounds.count - Self.roundsKeptMax) }
        return LeaseRound(number: round.number, epoch: round.epoch)
    }

    /// A voter's answer to round `number`.
    public mutating func received(_ answer: LeaseAnswer, from voter: VoterName, round number: UInt64,
                                  nowMilliseconds: Int64) -> [LeaseDirective] {
        switch answer {
        case .granted(let grantedEpoch, let voters):
            return granted(epoch: grantedEpoch, voters: voters, from: voter, round: number, nowMilliseconds: nowMilliseconds)
        case .revoked, .withheld, .notGranted, .heldElsewhere:
            // A newer epoch arrives with the schedule (the agent's long poll returns on any
            // registry change); until then the deadline in hand stands.
            return []
        }
    }

    /// Lapses the lease once its deadline has passed. An unknown lease stays unknown: there is
    /// nothing to stop that systemd's lease unit does not stop by itself.
    public mutating func tick(nowMilliseconds: Int64) -> [LeaseDirective] {
        guard case .held(let deadline) = phase, nowMilliseconds >= deadline else { return [] }
        phase = .lapsed
        return [.lapsed]
    }

    private mutating func granted(epoch grantedEpoch: UInt64, voters: [VoterName], from voter: VoterName, round number: UInt64,
                                  nowMilliseconds: Int64) -> [LeaseDirective] {
        guard let index = rounds.firstIndex(where: { $0.number == number }), rounds[index].epoch == grantedEpoch,
              grantedEpoch == epoch, voters.count <= Self.votersPerConfigurationMax, voters.contains(voter)
        else { return [] }
        rounds[index].grants[voter] = voters
        guard !rounds[index].isHeld, Self.isMajorityOfEveryConfiguration(rounds[index].grants) else { return [] }
        rounds[index].isHeld = true
        let deadline = rounds[index].sentAtMilliseconds + timing.leaseMilliseconds
        // An answer that comes after the lease it would grant has run out grants nothing.
        guard deadline > nowMilliseconds else { return [] }
        switch phase {
        case .held(let current):
            guard deadline > current else { return [] }
            phase = .held(deadlineMilliseconds: deadline)
            return [.extendSystemdLease(deadlineMilliseconds: deadline)]
        case .unknown, .lapsed:
            phase = .held(deadlineMilliseconds: deadline)
            return [.extendSystemdLease(deadlineMilliseconds: deadline), .regained]
        }
    }

    /// True when every configuration named by a grant has a majority of its voters among the
    /// granters. Raft changes one voter at a time, so the configurations in use at one moment
    /// differ by at most one step, and a majority of each intersects every majority of both.
    static func isMajorityOfEveryConfiguration(_ grants: [VoterName: [VoterName]]) -> Bool {
        guard !grants.isEmpty else { return false }
        for configuration in Set(grants.values) {
            let members = Set(configuration)
            let granting = grants.keys.filter(members.contains).count
            guard granting * 2 > members.count else { return false }
        }
        return true
    }
}
