import NIOCore

/// The bounds of one HTTP API server. Every limit has a default that suits a daemon serving
/// flotillactl, peers and a few orchestrators; `init` checks the relations between them, so a
/// configuration that exists is a valid one.
public struct HTTPAPIConfiguration: Sendable {
    /// The largest request body accepted; a larger one is answered 413 and the connection closed
    /// (the rest of the body is not read). The daemon sets it from `ClusterLimits`.
    public let requestBodyBytesMax: Int
    /// The largest request head (request line and header fields together); a larger one is a
    /// protocol error: 400 and close.
    public let requestHeadBytesMax: Int
    /// Connections served at once across all listeners; more are closed as soon as they are
    /// accepted, so a burst of clients cannot exhaust descriptors or memory.
    public let connectionsMax: Int
    /// Connections from one IP address at once (TCP listeners; the unix socket is local and not
    /// counted by address): one host holding connections open cannot take every slot.
    public let connectionsPerAddressMax: Int
    /// A kept-alive connection with no request in flight that reads nothing for this long is
    /// closed. A request in flight (a long poll, a followed journal) is never cut by it.
    public let idleTimeout: TimeAmount
    /// A request's head (and, on a new TLS connection, the handshake before it) must arrive
    /// within this time of its first byte; a client that dribbles its headers is cut off.
    public let requestHeadTimeout: TimeAmount
    /// A request's body must arrive within this time of its head (4 MiB at 1 Mbit/s is 34 s).
    public let requestBodyTimeout: TimeAmount
    /// The longest wait a long poll (`waitMilliseconds` of watch and schedule) may ask for; longer
    /// requests are shortened to it, not refused, so a client's larger default still works.
    public let longPollWaitMillisecondsMax: Int
    /// The most journal lines one request may ask for.
    public let journalLinesMax: Int
    /// Items per page of fleet's paged lists. fleet served pages of 100 and its clients follow
    /// `nextPageToken` whatever the size.
    public let pageItemsMax: Int

    public init(
        requestBodyBytesMax: Int = 2 << 20,
        requestHeadBytesMax: Int = 64 << 10,
        connectionsMax: Int = 256,
        connectionsPerAddressMax: Int = 64,
        idleTimeout: TimeAmount = .seconds(90),
        requestHeadTimeout: TimeAmount = .seconds(10),
        requestBodyTimeout: TimeAmount = .seconds(60),
        longPollWaitMillisecondsMax: Int = 60_000,
        journalLinesMax: Int = 10_000,
        pageItemsMax: Int = 100
    ) {
        precondition(requestBodyBytesMax > 0, "requestBodyBytesMax must be positive, got \(requestBodyBytesMax)")
        precondition(requestHeadBytesMax >= 1024, "requestHeadBytesMax must be at least 1 KiB, got \(requestHeadBytesMax)")
        precondition(connectionsMax > 0, "connectionsMax must be positive, got \(connectionsMax)")
        precondition(connectionsPerAddressMax > 0, "connectionsPerAddressMax must be positive, got \(connectionsPerAddressMax)")
        precondition(idleTimeout > .zero, "idleTimeout must be positive, got \(idleTimeout)")
        precondition(requestHeadTimeout > .zero && requestBodyTimeout > .zero, "request timeouts must be positive")
        precondition(longPollWaitMillisecondsMax >= 0, "longPollWaitMillisecondsMax must not be negative")
        precondition(journalLinesMax > 0, "journalLinesMax must be positive, got \(journalLinesMax)")
        precondition(pageItemsMax > 0, "pageItemsMax must be positive, got \(pageItemsMax)")
        self.requestBodyBytesMax = requestBodyBytesMax
        self.requestHeadBytesMax = requestHeadBytesMax
        self.connectionsMax = connectionsMax
        self.connectionsPerAddressMax = connectionsPerAddressMax
        self.idleTimeout = idleTimeout
        self.requestHeadTimeout = requestHeadTimeout
        self.requestBodyTimeout = requestBodyTimeout
        self.longPollWaitMillisecondsMax = longPollWaitMillisecondsMax
        self.journalLinesMax = journalLinesMax
        self.pageItemsMax = pageItemsMax
    }
}

/// Where the server listens.
public enum APIListener: Hashable, Sendable, CustomStringConvertible {
    /// A unix socket at `path`, created with `mode` (fleet's and Flotilla's default is
    /// /var/run/flotilla.sock, 0660). A stale socket file left by a previous run is removed
    /// first; any other file at the path makes `start` fail rather than be deleted.
    case unix(path: String, mode: UInt32 = 0o660)
    /// TCP on `host:port`; port 0 asks the kernel for a free port (`boundAddresses` tells which).
    case tcp(host: String, port: Int)
    /// HTTPS on `host:port`: TCP as `tcp`, with TLS in front of HTTP. `certificateChainPath` is a
    /// PEM file holding the server's certificate first, then any intermediates; `privateKeyPath`
    /// is the PEM private key of that certificate (unencrypted). Both are read once, by `start`,
    /// before any listener is bound, so a bad file fails the start instead of every handshake.
    /// With `clientCAPath` (the cluster's CA), a client may present a certificate of that CA
    /// (fleetctl's --cert-file): it must then verify, and a client certificate's ACL policies
    /// become the caller's; a client without one still connects and needs an ACL token.
    case tls(host: String, port: Int, certificateChainPath: String, privateKeyPath: String, clientCAPath: String? = nil)
    /// A listening socket inherited from systemd (socket activation: `LISTEN_FDS`, descriptors
    /// from 3). The server owns it from then on and closes it on shutdown.
    case inheritedSocket(descriptor: CInt)

    public var description: String {
        switch self {
        case .unix(let path, let mode): return "unix:\(path) (mode \(String(mode, radix: 8)))"
        case .tcp(let host, let port): return "tcp:\(host):\(port)"
        case .tls(let host, let port, _, _, _): return "tls:\(host):\(port)"
        case .inheritedSocket(let descriptor): return "inherited socket \(descriptor)"
        }
    }
}

/// What `HTTPAPIServer.start` could not do.
public struct HTTPAPIServerError: Error, Hashable, Sendable, CustomStringConvertible {
    public var listener: APIListener
    public var reason: String

    public init(listener: APIListener, reason: String) {
        self.listener = listener
        self.reason = reason
    }

    public var description: String { "cannot listen on \(listener): \(reason)" }
}
