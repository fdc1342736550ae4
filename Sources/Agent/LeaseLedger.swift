import Registry

/// A voter's side of the machines' leases (pure; time is this voter's monotonic clock, in ms).
///
/// A voter grants a machine's renewal when it is a voter, the machine asks at the epoch this
/// voter's applied registry holds for it, and this voter has not withheld that epoch. It
/// remembers, per machine, when it last granted (or, before any grant, when it first counted
/// the machine at this epoch). A machine silent for the expiry time E is *withheld*: this voter
/// never grants that epoch again, in this process or after a restart (the shell makes withholds
/// durable before they are reported). The leader moves a machine's units only once a majority
/// of the voters report the machine's current epoch withheld (`LeaseRevocation`).
///
/// Which machines are counted: those with units placed on them in the applied registry, and
/// those that renewed at their current epoch. A machine with nothing placed that never renews
/// is not counted, so a machine gone for good is revoked once, not again every E.
///
/// When not to count: withholding later than E is always safe (it only delays a revocation),
/// so a voter that is itself the likely cause of the silence starts its counts afresh: while it
/// knows no Raft leader (it is cut off from the other voters, or an election is on) and after a
/// gap in its own ticks (the process was frozen: every machine would look silent at once).
/// Without this, a voter back from a cut withheld every machine, and the leader had to advance
/// them all (seen on the test bed).
public struct LeaseLedger: Sendable {
    struct Record: Hashable, Sendable {
        var epoch: UInt64
        /// When this voter last granted this epoch, or first counted the machine at it.
        var sinceMilliseconds: Int64
        /// Whether a grant (not only the first count) set `sinceMilliseconds`.
        var wasGranted: Bool
        /// Who the last grant went to (the renewing process's public address), when it said.
        var holder: String? = nil
    }

    public let timing: LeaseTiming
    public let machinesMax: Int
    /// nil while this peer is not a voter: it then grants nothing and withholds nothing.
    public private(set) var voterSinceMilliseconds: Int64?
    private var records: [MachineID: Record] = [:]
    /// Withheld epochs, durable or not yet: renewals at them are refused at once.
    public private(set) var withheld: [MachineID: UInt64]
    /// Withheld epochs the shell has written to disk: only these are reported to the leader.
    public private(set) var durable: [MachineID: UInt64]
    /// No count runs from before this (the last time this voter had no leader or was frozen).
    private var countsFromMilliseconds: Int64 = .min
    private var lastTickMilliseconds: Int64?
    /// A longer pause between ticks than this means the process did not run (the shell ticks
    /// every 100 ms).
    public let tickGapMillisecondsMax: Int64

    /// `durableWithholds`: what the shell read back from disk at start.
    public init(timing: LeaseTiming, durableWithholds: [MachineID: UInt64] = [:], machinesMax: Int = 100_000,
                tickGapMillisecondsMax: Int64 = 1_000) {
        precondition(machinesMax > 0, "machinesMax must be positive, got \(machinesMax)")
        precondition(tickGapMillisecondsMax > 0, "tickGapMillisecondsMax must be positive, got \(tickGapMillisecondsMax)")
        self.timing = timing
        self.tickGapMillisecondsMax = tickGapMillisecondsMax
        self.machinesMax = machinesMax
        self.withheld = durableWithholds
        self.durable = durableWithholds
    }

    /// Whether this peer is a voter of its Raft configuration now. Becoming one starts every
    /// count afresh: grants made before (as a voter of an earlier configuration) are not known
    /// to have been counted, and a count may only start after the last grant it covers.
    public mutating func setVoter(_ isVoter: Bool, nowMilliseconds: Int64) {
        switch (isVoter, voterSinceMilliseconds) {
        case (true, nil):
            voterSinceMilliseconds = nowMilliseconds
            records.removeAll()
        case (false, .some):
            voterSinceMilliseconds = nil
            records.removeAll()
        case (true, .some), (false, nil):
            break
        }
    }

    /// A renewal from `machine` at `epoch`; `registryEpoch` is the machine's epoch in this
    /// voter's applied registry, `voters` this voter's configuration (its voters, sorted);
    /// `holder` the renewing process's public address (nil from a peer that does not say).
    ///
    /// One holder at a time: a renewal from another address than the last grant's, within the
    /// expiry time E of that grant, is `heldElsewhere`. Two machines with one machine ID (a
    /// cloned image) then cannot both hold the lease: a holder's lease runs L < E from a round
    /// a majority granted, each of those voters refuses any other holder until E after its grant,
    /// and any majority the other could gather shares one of them. A machine that really moved to
    /// a new address waits at most E after its old process's last renewal. The holder is kept in
    /// memory only: a majority of voters restarting within one lease time forgets it (a double
    /// fault; gossip's identity check still stands, see MachineIdentityCheck).
    public mutating func renew(machine: MachineID, epoch: UInt64, registryEpoch: UInt64, voters: [VoterName],
                               holder: String? = nil, nowMilliseconds: Int64) -> LeaseAnswer {
        guard voterSinceMilliseconds != nil else { return .notGranted(reason: "this peer is not a voter", voters: voters) }
        if registryEpoch > epoch { return .revoked(currentEpoch: registryEpoch) }
        guard registryEpoch == epoch else {
            return .notGranted(reason: "this voter has not applied epoch \(epoch) yet (it holds \(registryEpoch))", voters: voters)
        }
        if let withheldEpoch = withheld[machine], withheldEpoch >= epoch { return .withheld(epoch: epoch) }
        guard records[machine] != nil || records.count < machinesMax else {
            return .notGranted(reason: "this voter's lease ledger holds its limit of \(machinesMax) machines", voters: voters)
        }
        if let record = records[machine], record.wasGranted, let current = record.holder, let holder, current != holder,
           nowMilliseconds - record.sinceMilliseconds < timing.expiryMilliseconds {
            return .heldElsewhere(holder: current)
        }
        // Recorded before the answer leaves: a grant the machine counts is always one a later
        // withhold decision sees.
        records[machine] = Record(epoch: epoch, sinceMilliseconds: nowMilliseconds, wasGranted: true,
                                  holder: holder ?? records[machine]?.holder)
        return .granted(epoch: epoch, voters: voters)
    }

    /// Withholds every counted machine that has been silent for E. `hasLeader`: this voter knows
    /// a Raft leader (or is one) now; `placed`: the machines with units placed on them in the
    /// applied registry, with their epochs; `epochOf`: any machine's epoch there. Returns the withholds to make durable while they differ from what is durable
    /// (the shell writes them and calls `madeDurable`; a failed write is retried next tick), else nil.
    public mutating func tick(nowMilliseconds: Int64, hasLeader: Bool = true, placed: [MachineID: UInt64],
                              epochOf: (MachineID) -> UInt64) -> [MachineID: UInt64]? {
        guard voterSinceMilliseconds != nil else { return nil }
        if !hasLeader || lastTickMilliseconds.map({ nowMilliseconds - $0 > tickGapMillisecondsMax }) ?? false {
            countsFromMilliseconds = nowMilliseconds
        }
        lastTickMilliseconds = nowMilliseconds
        // Forget what a newer epoch made moot.
        for (machine, epoch) in withheld where epochOf(machine) > epoch { withheld[machine] = nil }
        for (machine, record) in records where epochOf(machine) != record.epoch && placed[machine] == nil {
            records[machine] = nil
        }
        var counted = placed
        for (machine, record) in records where counted[machine] == nil && record.epoch == epochOf(machine) {
            counted[machine] = record.epoch
        }
        for (machine, epoch) in counted.sorted(by: { $0.key < $1.key }) {
            if let withheldEpoch = withheld[machine], withheldEpoch >= epoch { continue }
            guard let record = records[machine], record.epoch == epoch else {
                if records[machine] != nil || records.count < machinesMax {
                    records[machine] = Record(epoch: epoch, sinceMilliseconds: nowMilliseconds, wasGranted: false)
                }
                continue
            }
            if nowMilliseconds - max(record.sinceMilliseconds, countsFromMilliseconds) >= timing.expiryMilliseconds {
                withheld[machine] = epoch
                records[machine] = nil
            }
        }
        return withheld != durable ? withheld : nil
    }

    /// The shell wrote `withholds` to disk (fsync returned).
    public mutating func madeDurable(_ withholds: [MachineID: UInt64]) {
        durable = withholds
    }

    /// Whether `machine` renewed at `epoch` within the lease time: the leader places new units
    /// only on machines whose lease it granted recently itself.
    public func isRenewing(_ machine: MachineID, epoch: UInt64, nowMilliseconds: Int64) -> Bool {
        guard voterSinceMilliseconds != nil, let record = records[machine], record.epoch == epoch, record.wasGranted else {
            return false
        }
        return nowMilliseconds - record.sinceMilliseconds < timing.leaseMilliseconds
    }
}

/// The leader's rules, from the voters' durable withholds (each voter's as it last answered;
/// a voter that did not answer is absent: it withheld nothing as far as anyone knows):
///
/// - revoke: a majority of the current voters withheld the machine's current epoch. Any
///   majority that granted the machine's last round shares a voter with this one, and that
///   voter withheld only E after its grant, by which time the machine's systemd has stopped its
///   units (the Lease article). The revocation unplaces the units.
/// - advance: some voters withheld the current epoch, fewer than a majority, and the machine
///   still renews with the leader. A voter that was cut off or frozen withholds every machine;
///   once it is back, those withholds would refuse the machines forever and leave their leases
///   one voter fault from lapsing. Advancing moves the machine to the next epoch with its units
///   kept, which every voter grants afresh. It is safe at any time: a revocation of the new
///   epoch needs a majority silent for E after they first counted it, which is after every
///   grant of the old epoch.
public enum LeaseRevocation {
    public struct Decisions: Hashable, Sendable {
        /// Sorted by machine.
        public var revoke: [MachineEpoch]
        public var advance: [MachineEpoch]
    }

    public struct MachineEpoch: Hashable, Sendable {
        public let machine: MachineID
        public let epoch: UInt64
    }

    /// `voters`: the leader's configuration; `isRenewing`: whether the machine renewed at its
    /// epoch with the leader lately (its own ledger).
    public static func decide(reports: [VoterName: [MachineID: UInt64]], voters: [VoterName], epochOf: (MachineID) -> UInt64,
                              isRenewing: (MachineID) -> Bool) -> Decisions {
        let members = Set(voters)
        guard !members.isEmpty else { return Decisions(revoke: [], advance: []) }
        var counts: [MachineID: Int] = [:]
        for (voter, withholds) in reports where members.contains(voter) {
            for (machine, epoch) in withholds where epoch == epochOf(machine) { counts[machine, default: 0] += 1 }
        }
        var decisions = Decisions(revoke: [], advance: [])
        for machine in counts.keys.sorted() {
            let entry = MachineEpoch(machine: machine, epoch: epochOf(machine))
            if counts[machine]! * 2 > members.count {
                decisions.revoke.append(entry)
            } else if isRenewing(machine) {
                decisions.advance.append(entry)
            }
        }
        return decisions
    }
}
