import Membership

/// What the shell did and what it dropped. Every input it refused is counted here, never
/// trapped on: bytes from the network are not to be trusted.
public struct MembershipShellCounters: Hashable, Sendable {
    public var datagramsReceived = 0
    /// Datagrams `MembershipCodec` could not decode (garbage, truncation, another version).
    public var datagramsDroppedUndecodable = 0
    /// Decodable datagrams that carried a push-pull, which belongs on a stream.
    public var datagramsDroppedStreamMessage = 0
    /// Datagrams no key of the keyring opened (plaintext, another cluster's key, forged or
    /// damaged): dropped before any decoding.
    public var datagramsDroppedUnauthenticated = 0
    public var datagramsSent = 0
    /// Datagrams not sent because the socket's buffer was full (SWIM tolerates loss).
    public var datagramsDroppedUnwritable = 0
    /// Sends to an address that is not an IP literal with a port (the core only learns addresses
    /// from peers, so this is a peer advertising nonsense).
    public var sendsDroppedBadAddress = 0
    /// Socket errors on the UDP socket (for example ICMP errors surfaced by the kernel).
    public var datagramSocketErrors = 0

    public var streamsAccepted = 0
    public var streamsRefusedOverLimit = 0
    /// With a keyring: inbound streams closed before their request arrived, to make room for a
    /// newcomer when `inboundStreamsMax` were open.
    public var streamsEvictedAwaitingRequest = 0
    /// Inbound streams refused because their address already had `inboundStreamsPerAddressMax`.
    public var streamsRefusedPerAddress = 0
    /// Inbound or outbound frames that were too large, empty, undecodable, or not the push-pull
    /// kind expected on that side of the exchange.
    public var streamFramesDroppedUndecodable = 0
    /// Push-pull frames no key of the keyring opened; their connection is closed.
    public var streamFramesDroppedUnauthenticated = 0
    public var streamsTimedOut = 0
    public var streamsOpened = 0
    public var streamsDroppedOverLimit = 0
    public var streamConnectFailures = 0
    /// A push-pull response with no inbound connection to answer on.
    public var streamResponsesDroppedNoConnection = 0
    public var streamMessagesReceived = 0

    /// Member events a slow consumer of `memberEvents` did not take in time.
    public var memberEventsDropped = 0
    public var ticks = 0

    public init() {}

    /// Everything that arrived without the cluster's key.
    public var unauthenticatedDropped: Int { datagramsDroppedUnauthenticated + streamFramesDroppedUnauthenticated }

    /// Everything that arrived from the network and was thrown away as malformed.
    public var garbageDropped: Int {
        datagramsDroppedUndecodable + datagramsDroppedStreamMessage + streamFramesDroppedUndecodable
    }
}

/// One change of the membership as this member sees it, in the order the core reported them.
public enum MembershipEvent: Hashable, Sendable {
    case changed(MemberChange)
    /// A dead or left member was retained long enough and is now forgotten.
    case forgotten(MemberID)
}
