/// Tunables of one membership instance, with hashicorp/memberlist's `DefaultLANConfig` values as
/// defaults. Every relation between them is checked at init, so a configuration that exists is
/// valid (hence `let`). All durations are milliseconds of the injected monotonic clock.
public struct MembershipConfiguration: Equatable, Sendable {
    /// SWIM §3.1: each member probes one member per protocol period. memberlist LAN: 1 s.
    public let probeIntervalMilliseconds: Int64
    /// How long to wait for a direct ack before asking others (SWIM's round-trip estimate).
    /// memberlist LAN: 500 ms. Must be below the probe interval so indirect probes have time.
    public let probeTimeoutMilliseconds: Int64
    /// SWIM §3.1: "selects k members at random and sends each a ping-req". memberlist LAN: 3.
    public let indirectChecks: Int
    /// Lifeguard §4.3: the minimum suspicion timeout is
    /// `suspicionMultiplier × log10(max(1, N)) × probeInterval`, and `suspicionMultiplier - 2`
    /// independent confirmations drive it from its maximum to that minimum. memberlist LAN: 4.
    public let suspicionMultiplier: Int
    /// Lifeguard §4.3: the suspicion timeout starts at this multiple of the minimum. memberlist: 6.
    public let suspicionMaxTimeoutMultiplier: Int
    /// Each broadcast is piggybacked at most `retransmitMultiplier × ceil(log10(N + 1))` times
    /// (SWIM §4.1: "a number of times proportional to log N"). memberlist LAN: 4.
    public let retransmitMultiplier: Int
    /// memberlist's gossip ticker: broadcasts not yet piggybacked on probes go out this often to
    /// `gossipNodes` random members. memberlist LAN: 200 ms and 3.
    public let gossipIntervalMilliseconds: Int64
    public let gossipNodes: Int
    /// Dead members still receive gossip for this long, so a member that was only partitioned away
    /// learns that it must refute (memberlist's GossipToTheDeadTime, LAN: 30 s).
    public let gossipToTheDeadMilliseconds: Int64
    /// Full-state exchange with one random member (memberlist LAN: 30 s), scaled up above
    /// `pushPullScaleThreshold` members as memberlist does, so the TCP load stays flat.
    public let pushPullIntervalMilliseconds: Int64
    public let pushPullScaleThreshold: Int
    /// Lifeguard §4.2: the local health multiplier saturates at `awarenessMaxMultiplier - 1`; probe
    /// interval and timeout are scaled by (multiplier + 1). memberlist LAN: 8.
    public let awarenessMaxMultiplier: Int
    /// Lifeguard §4.1: an intermediary that has no ack from the target after this fraction of the
    /// probe timeout sends a nack to the prober. The paper uses 80 %.
    public let nackTimeoutPercent: Int
    /// Dead (not left) members are kept this long, then forgotten. While kept they are counted
    /// for reconnect attempts, so a healed partition merges back (Serf's reconnect, here in the core).
    public let deadRetentionMilliseconds: Int64
    /// How often to try a push-pull with one random retained dead member.
    public let reconnectIntervalMilliseconds: Int64
    /// Until any member answers, `join` retries its seeds this often.
    public let joinRetryIntervalMilliseconds: Int64

    /// One UDP datagram on an Ethernet path without fragmentation (memberlist UDPBufferSize 1400).
    public let maximumPacketBytes: Int
    /// The membership table refuses new members beyond this (the local member not counted).
    public let membersMax: Int
    /// Broadcasts waiting to be piggybacked; the most transmitted, oldest are dropped first.
    public let pendingBroadcastsMax: Int
    /// memberlist's MetaMaxSize is 512 bytes; keys and values together.
    public let metadataBytesMax: Int
    /// Ping-reqs we relay at once for others; more are dropped (the prober then sees a missed nack).
    public let indirectProbesInFlightMax: Int
    /// Seeds contacted per join attempt.
    public let joinSeedsMax: Int

    public init(
        probeIntervalMilliseconds: Int64 = 1_000,
        probeTimeoutMilliseconds: Int64 = 500,
        indirectChecks: Int = 3,
        suspicionMultiplier: Int = 4,
        suspicionMaxTimeoutMultiplier: Int = 6,
        retransmitMultiplier: Int = 4,
        gossipIntervalMilliseconds: Int64 = 200,
        gossipNodes: Int = 3,
        gossipToTheDeadMilliseconds: Int64 = 30_000,
        pushPullIntervalMilliseconds: Int64 = 30_000,
        pushPullScaleThreshold: Int = 32,
        awarenessMaxMultiplier: Int = 8,
        nackTimeoutPercent: Int = 80,
        deadRetentionMilliseconds: Int64 = 3_600_000,
        reconnectIntervalMilliseconds: Int64 = 30_000,
        joinRetryIntervalMilliseconds: Int64 = 5_000,
        maximumPacketBytes: Int = 1_400,
        membersMax: Int = 16_384,
        pendingBroadcastsMax: Int = 4_096,
        metadataBytesMax: Int = 512,
        indirectProbesInFlightMax: Int = 64,
        joinSeedsMax: Int = 16
    ) throws(MembershipConfigurationError) {
        let positives: [(String, Int64)] = [
            ("probeIntervalMilliseconds", probeIntervalMilliseconds),
            ("probeTimeoutMilliseconds", probeTimeoutMilliseconds),
            ("suspicionMultiplier", Int64(suspicionMultiplier)),
            ("suspicionMaxTimeoutMultiplier", Int64(suspicionMaxTimeoutMultiplier)),
            ("retransmitMultiplier", Int64(retransmitMultiplier)),
            ("gossipIntervalMilliseconds", gossipIntervalMilliseconds),
            ("gossipNodes", Int64(gossipNodes)),
            ("pushPullIntervalMilliseconds", pushPullIntervalMilliseconds),
            ("pushPullScaleThreshold", Int64(pushPullScaleThreshold)),
            ("awarenessMaxMultiplier", Int64(awarenessMaxMultiplier)),
            ("nackTimeoutPercent", Int64(nackTimeoutPercent)),
            ("deadRetentionMilliseconds", deadRetentionMilliseconds),
            ("reconnectIntervalMilliseconds", reconnectIntervalMilliseconds),
            ("joinRetryIntervalMilliseconds", joinRetryIntervalMilliseconds),
            ("maximumPacketBytes", Int64(maximumPacketBytes)),
            ("membersMax", Int64(membersMax)),
            ("pendingBroadcastsMax", Int64(pendingBroadcastsMax)),
            ("indirectProbesInFlightMax", Int64(indirectProbesInFlightMax)),
            ("joinSeedsMax", Int64(joinSeedsMax)),
        ]
        for (name, value) in positives where value <= 0 {
            throw .notPositive(name: name, value: value)
        }
        if indirectChecks < 0 { throw .notPositive(name: "indirectChecks", value: Int64(indirectChecks)) }
        if metadataBytesMax < 0 { throw .notPositive(name: "metadataBytesMax", value: Int64(metadataBytesMax)) }
        if gossipToTheDeadMilliseconds < 0 {
            throw .notPositive(name: "gossipToTheDeadMilliseconds", value: gossipToTheDeadMilliseconds)
        }
        // Indirect probing happens between the probe timeout and the end of the interval.
        if probeTimeoutMilliseconds >= probeIntervalMilliseconds {
            throw .relation("probeTimeoutMilliseconds (\(probeTimeoutMilliseconds)) must be below probeIntervalMilliseconds (\(probeIntervalMilliseconds))")
        }
        if nackTimeoutPercent > 100 {
            throw .relation("nackTimeoutPercent (\(nackTimeoutPercent)) must be at most 100")
        }
        // The largest alive message (ID, host, version, metadata and their prefixes) must fit in
        // a datagram next to the largest header, or it could never be disseminated.
        let largestAlive = MembershipCodec.aliveBytesMax(metadataBytesMax: metadataBytesMax)
        if largestAlive + MembershipCodec.datagramHeaderBytesMax > maximumPacketBytes {
            throw .relation("an alive message of up to \(largestAlive) bytes (metadataBytesMax \(metadataBytesMax)) does not fit maximumPacketBytes \(maximumPacketBytes)")
        }
        if maximumPacketBytes > 65_507 {
            throw .relation("maximumPacketBytes (\(maximumPacketBytes)) exceeds a UDP datagram")
        }
        self.probeIntervalMilliseconds = probeIntervalMilliseconds
        self.probeTimeoutMilliseconds = probeTimeoutMilliseconds
        self.indirectChecks = indirectChecks
        self.suspicionMultiplier = suspicionMultiplier
        self.suspicionMaxTimeoutMultiplier = suspicionMaxTimeoutMultiplier
        self.retransmitMultiplier = retransmitMultiplier
        self.gossipIntervalMilliseconds = gossipIntervalMilliseconds
        self.gossipNodes = gossipNodes
        self.gossipToTheDeadMilliseconds = gossipToTheDeadMilliseconds
        self.pushPullIntervalMilliseconds = pushPullIntervalMilliseconds
        self.pushPullScaleThreshold = pushPullScaleThreshold
        self.awarenessMaxMultiplier = awarenessMaxMultiplier
        self.nackTimeoutPercent = nackTimeoutPercent
        self.deadRetentionMilliseconds = deadRetentionMilliseconds
        self.reconnectIntervalMilliseconds = reconnectIntervalMilliseconds
        self.joinRetryIntervalMilliseconds = joinRetryIntervalMilliseconds
        self.maximumPacketBytes = maximumPacketBytes
        self.membersMax = membersMax
        self.pendingBroadcastsMax = pendingBroadcastsMax
        self.metadataBytesMax = metadataBytesMax
        self.indirectProbesInFlightMax = indirectProbesInFlightMax
        self.joinSeedsMax = joinSeedsMax
    }

    /// memberlist's `DefaultLANConfig`.
    public static let lan: MembershipConfiguration = try! MembershipConfiguration()

    /// A faster LAN profile for small clusters, where the daemon wants a lost machine noticed
    /// within a few seconds: memberlist's LAN defaults with the probe interval and timeout halved
    /// (500 ms / 250 ms) and suspicion multiplier 3 instead of 4. The minimum suspicion timeout is
    /// then `3 × max(1, log10 N) × 0.5 s` (1.5 s up to 10 members, 3 s at 100, 4.5 s at 1,000)
    /// instead of `4 × max(1, log10 N) × 1 s`, reached after one independent confirmation
    /// (k = multiplier − 2) instead of two. The price is twice the probe traffic and less room for
    /// a slow member or a lossy path before a false suspicion turns into a death; the benchmark
    /// measures both (Contrib/bench/RESULTS.md, "Membership (simulated)": fast LAN profile).
    /// Everything else (gossip 200 ms to 3, retransmits, push-pull, Lifeguard's awareness) stays
    /// as in `lan`.
    public static let fastLAN: MembershipConfiguration = try! MembershipConfiguration(
        probeIntervalMilliseconds: 500, probeTimeoutMilliseconds: 250, suspicionMultiplier: 3)

    /// memberlist `retransmitLimit`: `multiplier × ceil(log10(N + 1))`.
    public func retransmitLimit(memberCount: Int) -> Int {
        retransmitMultiplier * Int(ceilLog10(Double(memberCount + 1)))
    }

    /// Lifeguard §4.3 / memberlist `suspicionTimeout`: the minimum suspicion timeout,
    /// `suspicionMultiplier × max(1, log10(max(1, N))) × probeInterval`.
    public func suspicionTimeoutMinMilliseconds(memberCount: Int) -> Int64 {
        let nodeScale = max(1.0, log10(Double(max(1, memberCount))))
        return Int64(Double(suspicionMultiplier) * nodeScale * Double(probeIntervalMilliseconds) + 0.5)
    }

    /// memberlist `pushPullScale`: above the threshold, the interval grows with log2 of the size.
    public func pushPullIntervalMilliseconds(memberCount: Int) -> Int64 {
        guard memberCount > pushPullScaleThreshold else { return pushPullIntervalMilliseconds }
        let multiplier = ceilPositive(log2(Double(memberCount)) - log2(Double(pushPullScaleThreshold))) + 1
        return Int64(multiplier) * pushPullIntervalMilliseconds
    }
}

public enum MembershipConfigurationError: Error, Equatable, Sendable {
    case notPositive(name: String, value: Int64)
    case relation(String)
}

// Logarithms without Foundation: the standard library has no log10, so we compute natural logs
// by range reduction and a series. Accuracy to 1e-12 is far more than the timers need.
func naturalLog(_ x: Double) -> Double {
    precondition(x > 0, "log of \(x)")
    // x = m × 2^e with m in [1, 2); ln x = e ln 2 + ln m, and ln m = 2 atanh((m-1)/(m+1)).
    let exponent = Double(x.exponent)
    let mantissa = x.significand
    let t = (mantissa - 1) / (mantissa + 1)
    let t2 = t * t
    var term = t
    var sum = 0.0
    var k = 1.0
    while k < 60 {
        sum += term / k
        term *= t2
        k += 2
    }
    return exponent * 0.693_147_180_559_945_3 + 2 * sum
}

func log10(_ x: Double) -> Double { naturalLog(x) / 2.302_585_092_994_045_7 }
func log2(_ x: Double) -> Double { naturalLog(x) / 0.693_147_180_559_945_3 }

/// Rounding without libm (`rounded()` needs it on Linux, and this module links only the
/// standard library). For the non-negative values of our formulas.
func ceilPositive(_ x: Double) -> Int {
    let truncated = Int(x)
    return Double(truncated) < x ? truncated + 1 : truncated
}

/// ceil(log10(x)) exactly for the integers we meet (powers of ten must not round up to the next).
func ceilLog10(_ x: Double) -> Double {
    var power = 1.0
    var result = 0.0
    while power < x {
        power *= 10
        result += 1
    }
    return result
}
