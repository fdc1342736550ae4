import Membership
import NIOCore

#if canImport(Glibc)
import Glibc
#endif

/// How one membership shell binds, identifies itself and bounds its IO. A `Sendable` value with
/// defaults; the relations between its fields are checked by `validate()`, which `start` calls.
public struct MembershipShellConfiguration: Sendable {
    /// The IP literal both sockets bind to (UDP for probes and gossip, TCP for push-pull, same
    /// port: a `MemberAddress` names one port for both, as memberlist's does).
    public var bindHost: String
    /// 0 lets the kernel choose (the shell then finds a port free for both UDP and TCP).
    public var bindPort: Int
    /// The host other members reach us at. Nil means `bindHost`, which must then not be a
    /// wildcard address (0.0.0.0 or ::), since peers cannot send to a wildcard.
    public var advertiseHost: String?
    /// This member's identity; `MachineID.read()` gives the machine's.
    public var memberID: MemberID
    public var metadata: MemberMetadata
    public var role: MemberRole
    public var version: String
    /// The protocol's tunables (memberlist LAN by default).
    public var membership: MembershipConfiguration
    /// The core's random seed. Nil: drawn once from the system generator at start; the shell
    /// reports the seed it used (`MembershipShell.randomSeed`) so a run can be replayed.
    public var randomSeed: UInt64?
    /// The gossip encryption keys (`GossipKeyring`). Nil: datagrams and frames travel in plain
    /// text and anyone who reaches the port can forge membership; only for tests of the
    /// plaintext path and clusters on a trusted network.
    public var keyring: GossipKeyring?

    /// A push-pull frame carries the whole table; larger frames are refused (and counted) before
    /// any of their payload is buffered. 8 MiB holds 16,384 members of typical size.
    public var streamFrameBytesMax: Int
    /// A push-pull exchange (connect, request, response) must finish within this, inbound or
    /// outbound; slower connections are closed and counted.
    public var streamTimeout: TimeAmount
    /// Inbound push-pull connections served at once; more are closed at once and counted.
    public var inboundStreamsMax: Int
    /// Inbound push-pull connections from one IP address at once (a member runs one exchange at a
    /// time with each peer): one host cannot take every slot and keep the others' joins and
    /// anti-entropy out, however fast it reconnects.
    public var inboundStreamsPerAddressMax: Int
    /// Outbound push-pull exchanges in flight at once; more requests are dropped and counted
    /// (the core retries push-pull and joins on its own timers).
    public var outboundStreamsMax: Int
    /// Member events buffered for a slow consumer of `memberEvents`; beyond this the oldest are
    /// dropped and counted (`members()` always tells the current state).
    public var memberEventsBufferMax: Int
    /// After `leave()`, how long the shell keeps ticking so the goodbye spreads from its
    /// broadcast queue (memberlist waits for the leave broadcast the same way).
    public var leavePropagationMilliseconds: Int64

    public init(
        bindHost: String,
        bindPort: Int,
        advertiseHost: String? = nil,
        memberID: MemberID,
        metadata: MemberMetadata = MemberMetadata(),
        role: MemberRole = .agent,
        version: String = "",
        membership: MembershipConfiguration = .lan,
        randomSeed: UInt64? = nil,
        keyring: GossipKeyring? = nil,
        streamFrameBytesMax: Int = 8 << 20,
        streamTimeout: TimeAmount = .seconds(10),
        inboundStreamsMax: Int = 32,
        inboundStreamsPerAddressMax: Int = 8,
        outboundStreamsMax: Int = 16,
        memberEventsBufferMax: Int = 1_024,
        leavePropagationMilliseconds: Int64 = 1_000
    ) {
        self.bindHost = bindHost
        self.bindPort = bindPort
        self.advertiseHost = advertiseHost
        self.memberID = memberID
        self.metadata = metadata
        self.role = role
        self.version = version
        self.membership = membership
        self.randomSeed = randomSeed
        self.keyring = keyring
        self.streamFrameBytesMax = streamFrameBytesMax
        self.streamTimeout = streamTimeout
        self.inboundStreamsMax = inboundStreamsMax
        self.inboundStreamsPerAddressMax = inboundStreamsPerAddressMax
        self.outboundStreamsMax = outboundStreamsMax
        self.memberEventsBufferMax = memberEventsBufferMax
        self.leavePropagationMilliseconds = leavePropagationMilliseconds
    }

    /// The host peers are told to use.
    public var advertisedHost: String { advertiseHost ?? bindHost }

    /// Checks every relation between the fields; `start` refuses a configuration that fails.
    public func validate() throws(MembershipShellError) {
        guard (0...65_535).contains(bindPort) else { throw .invalidConfiguration("bindPort \(bindPort) is not 0...65535") }
        guard (try? SocketAddress(ipAddress: bindHost, port: 0)) != nil else {
            throw .invalidConfiguration("bindHost \(bindHost) is not an IP address")
        }
        guard (try? SocketAddress(ipAddress: advertisedHost, port: 0)) != nil else {
            throw .invalidConfiguration("advertised host \(advertisedHost) is not an IP address")
        }
        if ["0.0.0.0", "::"].contains(advertisedHost) {
            throw .invalidConfiguration("bindHost \(bindHost) is a wildcard: set advertiseHost")
        }
        // The largest push-pull the core may send must fit a frame, or joins would fail forever.
        guard streamFrameBytesMax >= 64 << 10 else {
            throw .invalidConfiguration("streamFrameBytesMax \(streamFrameBytesMax) is below 64 KiB")
        }
        guard streamFrameBytesMax <= 1 << 30 else {
            throw .invalidConfiguration("streamFrameBytesMax \(streamFrameBytesMax) is above 1 GiB")
        }
        guard streamTimeout > .zero else { throw .invalidConfiguration("streamTimeout must be positive") }
        for (name, value) in [("inboundStreamsMax", inboundStreamsMax), ("inboundStreamsPerAddressMax", inboundStreamsPerAddressMax),
                              ("outboundStreamsMax", outboundStreamsMax),
                              ("memberEventsBufferMax", memberEventsBufferMax)] where value <= 0 {
            throw .invalidConfiguration("\(name) must be positive, got \(value)")
        }
        guard leavePropagationMilliseconds >= 0 else {
            throw .invalidConfiguration("leavePropagationMilliseconds must not be negative")
        }
    }
}

public enum MembershipShellError: Error, Hashable, Sendable {
    case invalidConfiguration(String)
    /// The core refused the local member's data (metadata or version too large).
    case invalidLocalMember(MembershipError)
    case bindFailed(host: String, port: Int, reason: String)
    case machineIDUnreadable(path: String, reason: String)
    /// The shell was stopped; the operation did not happen.
    case stopped
}

/// The machine's identity, as systemd keeps it.
public enum MachineID {
    public static let defaultPath = "/etc/machine-id"

    /// Reads and checks a machine ID file: one line, 1...`MemberID.bytesMax` printable ASCII
    /// characters without spaces (systemd writes 32 lowercase hex digits).
    public static func read(path: String = defaultPath) throws(MembershipShellError) -> MemberID {
        guard let file = fopen(path, "r") else {
            throw .machineIDUnreadable(path: path, reason: String(cString: strerror(errno)))
        }
        defer { fclose(file) }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 256)
        let count = fread(&buffer, 1, buffer.count, file)
        bytes = Array(buffer[0..<count])
        return try parse(bytes, path: path)
    }

    /// The checks of `read`, on bytes already in memory.
    public static func parse(_ bytes: [UInt8], path: String = defaultPath) throws(MembershipShellError) -> MemberID {
        var line = bytes
        while let last = line.last, last == UInt8(ascii: "\n") || last == UInt8(ascii: "\r") { line.removeLast() }
        guard !line.isEmpty, line.count <= MemberID.bytesMax else {
            throw .machineIDUnreadable(path: path, reason: "expected 1...\(MemberID.bytesMax) bytes on one line")
        }
        guard line.allSatisfy({ $0 > 0x20 && $0 < 0x7f }) else {
            throw .machineIDUnreadable(path: path, reason: "not printable ASCII without spaces")
        }
        return MemberID(String(decoding: line, as: UTF8.self))
    }
}
