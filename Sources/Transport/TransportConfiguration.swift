import ClusterCertificates
import NIOCore
import Raft
import Wire

/// Where a peer listens. Host is a literal address or a name the resolver knows ("127.0.0.1").
public struct PeerAddress: Hashable, Sendable, CustomStringConvertible {
    public var host: String
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    public var description: String { "\(host):\(port)" }
}

/// Tunables of one server's `Transport`. Every relation between them is checked by `init`, so a
/// configuration that exists is a valid one.
public struct TransportConfiguration: Sendable {
    public let localID: NodeID
    /// Where this server accepts connections from its peers. Port 0 asks the kernel for a free port
    /// (tests); `Transport.listenPort` then tells which one it got.
    public let listenAddress: PeerAddress
    /// The peers this server sends to, one outbound connection each. More can be set later with
    /// `Transport.setPeer(_:address:)` (membership changes, tests that bind port 0 first).
    public let peers: [NodeID: PeerAddress]
    /// Messages waiting per peer while its connection is down or its socket buffer is full. When
    /// full, the newest message is dropped and counted: Raft tolerates loss (every message is
    /// retried or superseded by a later heartbeat or append), and dropping the newest rather than
    /// the oldest keeps what was already queued in order.
    public let sendQueueMessagesMax: Int
    /// The largest frame body accepted from a peer. Must exceed the largest message the Raft core
    /// sends (an AppendEntries of `appendEntriesBatchBytesMax` or a snapshot chunk, plus headers).
    public let frameBytesMax: Int
    /// Reconnect delays grow from `reconnectDelayMin`, doubling per failed attempt, up to
    /// `reconnectDelayMax`; each is then jittered (see `ReconnectBackoff`).
    public let reconnectDelayMin: TimeAmount
    public let reconnectDelayMax: TimeAmount
    public let connectTimeout: TimeAmount
    /// Seeds the reconnect jitter, so that a run is reproducible from its configuration.
    public let jitterSeed: UInt64
    /// Inbound connections served at once; more are closed as soon as they are accepted. A cluster
    /// needs one per peer, plus a few for peers that reconnect before their old socket times out.
    public let inboundConnectionsMax: Int
    /// Inbound connections from one IP address at once: a peer holds one (its outbound link to
    /// us), two for a moment while it reconnects, a few more in a test cluster on one loopback
    /// address. Without it one host that opens and holds connections fills `inboundConnectionsMax`
    /// and every real peer is refused.
    public let inboundConnectionsPerAddressMax: Int
    /// With TLS, an inbound connection must complete its handshake this soon after it is
    /// accepted, or it is closed: one that connects and then says nothing (or dribbles a byte at a
    /// time) holds a slot only this long.
    public let handshakeTimeout: TimeAmount
    /// An inbound connection on which nothing arrives for this long is closed. A leader's link
    /// carries heartbeats every tick; a link between two followers may be silent for long, so its
    /// sender simply reconnects on its next message (Raft tolerates the lost one).
    public let inboundIdleTimeout: TimeAmount
    /// The outbound socket buffer above which a connection counts as not writable, so that
    /// messages wait in the bounded send queue instead of piling up inside NIO.
    public let outboundBufferBytesHigh: Int
    /// Mutual TLS 1.3 on every connection, both ways, and the identity checks that bind a
    /// certificate to the Raft IDs it may speak for. Nil: plain TCP, which accepts a message
    /// from anyone who names a valid `from` (tests of the plain path only).
    public var tls: TransportTLS?

    public init(
        localID: NodeID,
        listenAddress: PeerAddress,
        peers: [NodeID: PeerAddress],
        sendQueueMessagesMax: Int = 4096,
        frameBytesMax: Int = Frame.frameBytesMaxDefault,
        reconnectDelayMin: TimeAmount = .milliseconds(10),
        reconnectDelayMax: TimeAmount = .seconds(1),
        connectTimeout: TimeAmount = .seconds(1),
        jitterSeed: UInt64 = 1,
        inboundConnectionsMax: Int = 64,
        inboundConnectionsPerAddressMax: Int = 8,
        handshakeTimeout: TimeAmount = .seconds(10),
        inboundIdleTimeout: TimeAmount = .seconds(120),
        outboundBufferBytesHigh: Int = 4 * 1024 * 1024
    ) throws(TransportError) {
        for (name, value) in [
            ("sendQueueMessagesMax", sendQueueMessagesMax), ("frameBytesMax", frameBytesMax),
            ("inboundConnectionsMax", inboundConnectionsMax), ("inboundConnectionsPerAddressMax", inboundConnectionsPerAddressMax),
            ("outboundBufferBytesHigh", outboundBufferBytesHigh),
        ] where value <= 0 {
            throw .invalidConfiguration("\(name) must be positive, is \(value)")
        }
        guard handshakeTimeout.nanoseconds > 0, inboundIdleTimeout.nanoseconds > 0 else {
            throw .invalidConfiguration("handshakeTimeout (\(handshakeTimeout)) and inboundIdleTimeout (\(inboundIdleTimeout)) must be positive")
        }
        guard frameBytesMax <= Int(UInt32.max) else {
            throw .invalidConfiguration("frameBytesMax \(frameBytesMax) exceeds the 32-bit frame length")
        }
        guard reconnectDelayMin.nanoseconds > 0, reconnectDelayMin <= reconnectDelayMax else {
            throw .invalidConfiguration("reconnect delays must satisfy 0 < min (\(reconnectDelayMin)) <= max (\(reconnectDelayMax))")
        }
        guard connectTimeout.nanoseconds > 0 else {
            throw .invalidConfiguration("connectTimeout must be positive, is \(connectTimeout)")
        }
        guard (0...65535).contains(listenAddress.port) else {
            throw .invalidConfiguration("listen port \(listenAddress.port) is out of range")
        }
        if peers[localID] != nil {
            throw .invalidConfiguration("the peers include this server itself (\(localID))")
        }
        for (id, address) in peers where !(1...65535).contains(address.port) {
            throw .invalidConfiguration("port \(address.port) of peer \(id) is out of range")
        }
        self.localID = localID
        self.listenAddress = listenAddress
        self.peers = peers
        self.sendQueueMessagesMax = sendQueueMessagesMax
        self.frameBytesMax = frameBytesMax
        self.reconnectDelayMin = reconnectDelayMin
        self.reconnectDelayMax = reconnectDelayMax
        self.connectTimeout = connectTimeout
        self.jitterSeed = jitterSeed
        self.inboundConnectionsMax = inboundConnectionsMax
        self.inboundConnectionsPerAddressMax = inboundConnectionsPerAddressMax
        self.handshakeTimeout = handshakeTimeout
        self.inboundIdleTimeout = inboundIdleTimeout
        self.outboundBufferBytesHigh = outboundBufferBytesHigh
    }
}

/// The TLS side of a transport. Chains are verified against the cluster's CA by NIOSSL; these
/// checks then say which machine a verified certificate may be.
public struct TransportTLS: Sendable {
    public let contexts: PeerTLS
    /// Whether the peer that proved `identity` on an inbound connection may send a message whose
    /// `from` is this node ID. A message it may not send is dropped, counted, and its connection
    /// closed.
    public let mayAcceptMessage: @Sendable (_ from: NodeID, _ identity: PeerIdentity) -> Bool
    /// Whether the server we dialled for `peer` at `address` proved to be it. Default: a server
    /// certificate naming the address we dialled.
    public let isServer: @Sendable (_ peer: NodeID, _ address: PeerAddress, _ identity: PeerIdentity) -> Bool

    public init(contexts: PeerTLS,
                mayAcceptMessage: @escaping @Sendable (NodeID, PeerIdentity) -> Bool,
                isServer: @escaping @Sendable (NodeID, PeerAddress, PeerIdentity) -> Bool = { _, address, identity in
                    identity.role == .server && identity.ipAddresses.contains(address.host)
                }) {
        self.contexts = contexts
        self.mayAcceptMessage = mayAcceptMessage
        self.isServer = isServer
    }
}

/// Operating errors of the transport. Problems with one peer's bytes or connection are never
/// errors of the transport: they are counted (`TransportCounters`), logged, and that connection
/// alone is closed.
public enum TransportError: Error, Equatable, Sendable {
    case invalidConfiguration(String)
    /// The listener could not be bound (address in use, no permission). `reason` is the system's.
    case bindFailed(address: PeerAddress, reason: String)
    case shutDown
}

/// What the transport has done since it started. Read with `Transport.counters()`.
public struct TransportCounters: Equatable, Sendable {
    /// Frames handed to a socket.
    public var messagesSent = 0
    /// Messages dropped because their peer's send queue was full (drop newest).
    public var messagesDroppedQueueFull = 0
    /// Messages addressed to a server with no known address.
    public var messagesDroppedUnknownPeer = 0
    /// Messages decoded from inbound connections and handed to the receiver.
    public var messagesReceived = 0
    /// Inbound connections closed because their bytes did not decode (bad magic, unsupported
    /// version, checksum, malformed body, oversized frame).
    public var connectionsClosedOnWireError = 0
    /// Inbound connections refused because `inboundConnectionsMax` were already open.
    public var connectionsRefusedOverLimit = 0
    /// TLS: inbound connections closed, their handshake unfinished, to make room for a newcomer
    /// when `inboundConnectionsMax` were open.
    public var connectionsEvictedUnauthenticated = 0
    /// Inbound connections refused because their address already had `inboundConnectionsPerAddressMax`.
    public var connectionsRefusedPerAddress = 0
    /// Inbound connections closed for not completing the TLS handshake within `handshakeTimeout`.
    public var handshakeTimeouts = 0
    /// Inbound connections closed after `inboundIdleTimeout` without a byte.
    public var idleConnectionsClosed = 0
    public var connectAttempts = 0
    public var connectFailures = 0
    public var connectionsEstablished = 0
    /// TLS: connections closed because the peer's verified certificate was not who it had to be
    /// (an inbound sender speaking for another node, an outbound server of another address).
    public var connectionsClosedUnauthorized = 0
    /// TLS: messages dropped because their `from` was not the sending certificate's.
    public var messagesDroppedUnauthorized = 0
    /// TLS: handshakes that failed (no certificate, another CA, TLS below 1.3).
    public var handshakeFailures = 0

    public init() {}
}
