/// The durations of a machine's lease, and the expiry time derived from them (the argument is in
/// the Agent documentation's Lease article; the letters below are its names).
///
/// - L `leaseMilliseconds`: how long a renewal round that a majority of the voters granted lets
///   the machine run its units, counted from when the round was *sent*, on the machine's clock.
/// - H `renewalIntervalMilliseconds`: how often the machine sends a round to every voter.
/// - S `stopAllowanceMilliseconds`: how long the machine's units may take to stop once the lease
///   has run out (systemd's stop jobs, a container's `docker stop`).
/// - Δ `systemdSlackMilliseconds`: how late systemd may act on the lease: sd-event fires timers up
///   to 250 ms late (its default accuracy), and a ping is timed when systemd reads it.
/// - ρ `clockDriftPartsPerMillion`: the bound on how far any clock's rate may stray from real
///   time (monotonic clocks only; wall clocks never enter).
/// - E `expiryMilliseconds` = (1 + ρ) · (L / (1 − ρ) + Δ + S), rounded up: a voter that has granted
///   a machine nothing for E (on its own clock) withholds that machine's lease epoch for good, and
///   only a majority of such voters lets the leader move the machine's units.
public struct LeaseTiming: Hashable, Sendable {
    public let leaseMilliseconds: Int64
    public let renewalIntervalMilliseconds: Int64
    public let stopAllowanceMilliseconds: Int64
    public let systemdSlackMilliseconds: Int64
    public let clockDriftPartsPerMillion: Int64
    public let expiryMilliseconds: Int64

    /// 1 %: a hundred times what an unsynchronised quartz oscillator drifts (about 100 ppm) and
    /// twenty times the most NTP ever slews a clock (500 ppm).
    public static let clockDriftPartsPerMillionStandard: Int64 = 10_000
    /// sd-event's default timer accuracy (250 ms) plus 250 ms for a ping that waits while systemd
    /// is busy (a daemon-reload with a thousand units takes about that long on the test bed).
    public static let systemdSlackMillisecondsStandard: Int64 = 500
    /// At least this many rounds fit in one lease, so that one or two lost rounds never lapse it.
    public static let roundsPerLeaseMin: Int64 = 3
    public static let leaseMillisecondsRange: ClosedRange<Int64> = 300...3_600_000
    public static let stopAllowanceMillisecondsMax: Int64 = 600_000

    public init(leaseMilliseconds: Int64, renewalIntervalMilliseconds: Int64, stopAllowanceMilliseconds: Int64,
                systemdSlackMilliseconds: Int64 = Self.systemdSlackMillisecondsStandard,
                clockDriftPartsPerMillion: Int64 = Self.clockDriftPartsPerMillionStandard) throws(LeaseTimingError) {
        guard Self.leaseMillisecondsRange.contains(leaseMilliseconds) else {
            throw LeaseTimingError("the lease (agent_ttl) must be between \(Self.leaseMillisecondsRange.lowerBound) ms and 1 h, got \(leaseMilliseconds) ms")
        }
        guard renewalIntervalMilliseconds > 0, renewalIntervalMilliseconds * Self.roundsPerLeaseMin <= leaseMilliseconds else {
            throw LeaseTimingError("the renewal interval (agent_renew_interval, \(renewalIntervalMilliseconds) ms) must be positive and at most a third of the lease (agent_ttl, \(leaseMilliseconds) ms), so that a lost round or two never lapses it")
        }
        guard (0...Self.stopAllowanceMillisecondsMax).contains(stopAllowanceMilliseconds) else {
            throw LeaseTimingError("the stop allowance (agent_stop_allowance) must be between 0 and 10 min, got \(stopAllowanceMilliseconds) ms")
        }
        guard (0...60_000).contains(systemdSlackMilliseconds) else {
            throw LeaseTimingError("systemd's slack must be between 0 and 60 s, got \(systemdSlackMilliseconds) ms")
        }
        guard (0..<100_000).contains(clockDriftPartsPerMillion) else {
            throw LeaseTimingError("the clock drift bound must be below 10 % (100,000 ppm), got \(clockDriftPartsPerMillion) ppm")
        }
        self.leaseMilliseconds = leaseMilliseconds
        self.renewalIntervalMilliseconds = renewalIntervalMilliseconds
        self.stopAllowanceMilliseconds = stopAllowanceMilliseconds
        self.systemdSlackMilliseconds = systemdSlackMilliseconds
        self.clockDriftPartsPerMillion = clockDriftPartsPerMillion
        self.expiryMilliseconds = Self.expiry(lease: leaseMilliseconds, stopAllowance: stopAllowanceMilliseconds,
                                              slack: systemdSlackMilliseconds, drift: clockDriftPartsPerMillion)
    }

    /// E = (1 + ρ) · (L / (1 − ρ) + Δ + S), each division rounded up, so E is never short. With the
    /// ranges above every product stays below 2^53.
    static func expiry(lease: Int64, stopAllowance: Int64, slack: Int64, drift: Int64) -> Int64 {
        let million: Int64 = 1_000_000
        let leaseAtSlowestRate = divideRoundingUp(lease * million, million - drift)
        return divideRoundingUp((leaseAtSlowestRate + slack + stopAllowance) * (million + drift), million)
    }

    static func divideRoundingUp(_ numerator: Int64, _ denominator: Int64) -> Int64 {
        precondition(numerator >= 0 && denominator > 0, "divideRoundingUp(\(numerator), \(denominator))")
        return (numerator + denominator - 1) / denominator
    }
}

/// A lease timing that breaks one of the relations; the message names the setting.
public struct LeaseTimingError: Error, Hashable, Sendable, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}
