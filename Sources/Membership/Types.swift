/// Value types of the membership core. Everything here is plain data: no IO, no clocks.

/// A point on the shell's monotonic clock, in milliseconds since an arbitrary origin.
///
/// Time is injected: the core never reads a clock. Milliseconds rather than abstract ticks
/// because memberlist's defaults are stated in milliseconds (probe timeout 500 ms, gossip interval
/// 200 ms) and a simulated network wants sub-interval latencies. The shell passes its monotonic
/// clock's readings (the simulation, its own clock) converted to milliseconds.
public struct MonotonicInstant: Comparable, Hashable, Sendable, CustomStringConvertible {
    public var milliseconds: Int64

    public init(milliseconds: Int64) { self.milliseconds = milliseconds }

    public static let zero = MonotonicInstant(milliseconds: 0)

    public static func < (lhs: Self, rhs: Self) -> Bool { lhs.milliseconds < rhs.milliseconds }

    public static func + (lhs: Self, rhsMilliseconds: Int64) -> Self {
        MonotonicInstant(milliseconds: lhs.milliseconds &+ rhsMilliseconds)
    }

    public func milliseconds(since earlier: MonotonicInstant) -> Int64 { milliseconds - earlier.milliseconds }

    public var description: String { "\(milliseconds)ms" }
}

/// A member's identity: the machine ID (from /etc/machine-id in the shell). Stable across restarts,
/// which is what lets a restarted machine rejoin as itself (it refutes its own death).
public struct MemberID: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// /etc/machine-id holds 32 hex characters; we allow more for tests and other ID schemes.
    public static let bytesMax = 128

    public let rawValue: String

    /// Programmer error to pass an empty or oversized ID; decoded IDs are checked by the codec.
    public init(_ rawValue: String) {
        precondition(!rawValue.isEmpty && rawValue.utf8.count <= Self.bytesMax,
                     "MemberID must be 1...\(Self.bytesMax) UTF-8 bytes, got \(rawValue.utf8.count)")
        self.rawValue = rawValue
    }

    public static func < (lhs: Self, rhs: Self) -> Bool { lhs.rawValue < rhs.rawValue }
    public var description: String { rawValue }
}

/// Where a member listens for membership datagrams (and push-pull streams, same port).
public struct MemberAddress: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// A DNS name is at most 253 bytes; an IPv6 literal far less.
    public static let hostBytesMax = 253

    public let host: String
    public let port: UInt16

    public init(host: String, port: UInt16) {
        precondition(!host.isEmpty && host.utf8.count <= Self.hostBytesMax,
                     "MemberAddress host must be 1...\(Self.hostBytesMax) bytes, got \(host.utf8.count)")
        self.host = host
        self.port = port
    }

    public static func < (lhs: Self, rhs: Self) -> Bool {
        (lhs.host, lhs.port) < (rhs.host, rhs.port)
    }

    public var description: String { "\(host):\(port)" }
}

/// Voters take part in Raft consensus; agents only run units.
public enum MemberRole: UInt8, Hashable, Sendable, CaseIterable {
    case voter = 1
    case agent = 2
}

/// SWIM's states plus `left` (memberlist's StateLeft): a member that said goodbye is not probed
/// and not reported as failed.
public enum MemberStatus: UInt8, Hashable, Sendable, CaseIterable, CustomStringConvertible {
    case alive = 1
    case suspect = 2
    case dead = 3
    case left = 4

    /// Alive and suspect members are probed, gossiped to and counted in the group size.
    public var isActive: Bool { self == .alive || self == .suspect }

    public var description: String {
        switch self {
        case .alive: "alive"
        case .suspect: "suspect"
        case .dead: "dead"
        case .left: "left"
        }
    }
}

/// SWIM §4.2: "the incarnation number ... is a global number initialized to 0 when the member
/// joins the group; it can be incremented only by the member itself" (when refuting a suspicion,
/// or here also when its data changes).
public typealias Incarnation = UInt64

/// Sorted key=value pairs a member advertises (labels for scheduling, for example `region=eu`).
/// Kept sorted by key so equal metadata compares and encodes identically on every machine.
public struct MemberMetadata: Hashable, Sendable, CustomStringConvertible {
    public struct Entry: Hashable, Sendable {
        public let key: String
        public let value: String
        public init(key: String, value: String) {
            self.key = key
            self.value = value
        }
    }

    /// Sorted by key, keys unique.
    public let entries: [Entry]

    public init() { entries = [] }

    /// The last value wins for a repeated key.
    public init(_ pairs: [String: String]) {
        entries = pairs.map { Entry(key: $0.key, value: $0.value) }.sorted { $0.key < $1.key }
    }

    /// For the decoder: `entries` must already be sorted with unique keys (checked by the caller).
    init(sortedEntries: [Entry]) { entries = sortedEntries }

    public subscript(key: String) -> String? { entries.first { $0.key == key }?.value }

    /// The bytes the metadata occupies on the wire, without the length prefixes; bounded by
    /// `MembershipConfiguration.metadataBytesMax` so one alive message always fits a datagram.
    public var contentBytes: Int { entries.reduce(0) { $0 + $1.key.utf8.count + $1.value.utf8.count } }

    public var description: String { entries.map { "\($0.key)=\($0.value)" }.joined(separator: ",") }
}

/// What every member knows about one member. Changes to anything but `status` spread with a new
/// incarnation chosen by the member itself.
///
/// The advertised data (address, metadata, version) sits behind one shared immutable reference:
/// every member holds a record of every other, and a simulated cluster holds N² of them, so a
/// record is 40 bytes instead of 88, and copies (into messages, tables, push-pull states) share
/// the data instead of retaining three strings and an array each. Setting one of those fields
/// makes a new reference, so `Member` keeps value semantics.
public struct Member: Hashable, Sendable, CustomStringConvertible {
    public var id: MemberID
    public var incarnation: Incarnation
    private var data: MemberData
    public var status: MemberStatus
    public var role: MemberRole

    public var address: MemberAddress {
        get { data.address }
        set { data = MemberData(address: newValue, metadata: data.metadata, version: data.version) }
    }

    public var metadata: MemberMetadata {
        get { data.metadata }
        set { data = MemberData(address: data.address, metadata: newValue, version: data.version) }
    }

    /// The software version the member runs, for rolling upgrades (free text, bounded).
    public var version: String {
        get { data.version }
        set { data = MemberData(address: data.address, metadata: data.metadata, version: newValue) }
    }

    /// A version string is a label, not a document.
    public static let versionBytesMax = 64

    public init(id: MemberID, address: MemberAddress, metadata: MemberMetadata = MemberMetadata(),
                role: MemberRole = .agent, version: String = "", incarnation: Incarnation = 0,
                status: MemberStatus = .alive) {
        self.id = id
        self.incarnation = incarnation
        self.data = MemberData(address: address, metadata: metadata, version: version)
        self.status = status
        self.role = role
    }

    public static func == (lhs: Member, rhs: Member) -> Bool {
        lhs.id == rhs.id && lhs.incarnation == rhs.incarnation && lhs.status == rhs.status && lhs.role == rhs.role
            && (lhs.data === rhs.data || lhs.data.sameContent(as: rhs.data))
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(id)
        hasher.combine(incarnation)
        hasher.combine(status)
        hasher.combine(role)
        hasher.combine(data.address)
        hasher.combine(data.metadata)
        hasher.combine(data.version)
    }

    /// Whether two records describe the same advertised data (ignoring status and incarnation).
    func hasSameData(as other: Member) -> Bool {
        role == other.role && (data === other.data || data.sameContent(as: other.data))
    }

    public var description: String { "\(id)@\(address) \(status) inc=\(incarnation)" }
}

/// The rarely changing part of a `Member`, immutable and shared between copies.
final class MemberData: Sendable {
    let address: MemberAddress
    let metadata: MemberMetadata
    let version: String

    init(address: MemberAddress, metadata: MemberMetadata, version: String) {
        self.address = address
        self.metadata = metadata
        self.version = version
    }

    func sameContent(as other: MemberData) -> Bool {
        address == other.address && metadata == other.metadata && version == other.version
    }
}

/// SplitMix64 (Steele, Lea, Flood 2014): tiny, fast, and good enough to pick probe targets.
/// The core takes one by value at init so every random choice replays from the seed; the shell
/// seeds it from the system generator. A concrete type (not a generic parameter) so the core's
/// hot paths are specialised across the module boundary.
public struct MembershipRandom: RandomNumberGenerator, Sendable {
    private var state: UInt64

    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Uniform in 0..<bound (the modulo bias is below 2^-50 for our bounds).
    @inlinable
    public mutating func below(_ bound: Int) -> Int {
        precondition(bound > 0, "below(\(bound))")
        return Int(next() % UInt64(bound))
    }
}
