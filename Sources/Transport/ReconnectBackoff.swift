import NIOCore

/// Capped exponential backoff with jitter for reconnecting to a peer (pure: no clock, no global
/// randomness). Attempt n waits a delay drawn uniformly from [d/2, d] where d = min(max, min × 2ⁿ)
/// ("equal jitter"): the exponential part keeps a dead peer from being hammered, the jitter keeps
/// servers that lost a peer at the same instant from reconnecting in lock-step, and the floor of
/// d/2 keeps the delay from collapsing to zero.
public struct ReconnectBackoff: Sendable {
    public let delayMinNanoseconds: Int64
    public let delayMaxNanoseconds: Int64
    /// Failed attempts since the last successful connection.
    public private(set) var attempt = 0
    var random: SplitMix64

    public init(delayMin: TimeAmount, delayMax: TimeAmount, seed: UInt64) {
        precondition(delayMin.nanoseconds > 0 && delayMin <= delayMax, "backoff needs 0 < min <= max, got \(delayMin) \(delayMax)")
        self.delayMinNanoseconds = delayMin.nanoseconds
        self.delayMaxNanoseconds = delayMax.nanoseconds
        self.random = SplitMix64(seed: seed)
    }

    /// The delay before the next attempt; counts the attempt.
    public mutating func nextDelay() -> TimeAmount {
        // Doubling stops once the cap is reached, so the shift can never overflow.
        var ceiling = delayMinNanoseconds
        var doublings = 0
        while doublings < attempt && ceiling < delayMaxNanoseconds {
            ceiling = min(delayMaxNanoseconds, ceiling * 2)
            doublings += 1
        }
        attempt += 1
        let floor = ceiling / 2
        let spread = UInt64(ceiling - floor) + 1
        return .nanoseconds(floor + Int64(random.next() % spread))
    }

    /// A connection succeeded: the next failure starts again from the minimum.
    public mutating func reset() { attempt = 0 }
}

/// Steele, Lea and Flood's SplitMix64: small, fast and good enough for jitter.
struct SplitMix64: Sendable {
    var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
