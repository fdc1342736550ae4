/// On whose behalf a request is made, carried from the peer that received it to the peer that
/// answers it, so that authorization is decided once, by the answering peer (the leader for
/// every write), about the original caller rather than about the peer that relayed it.
///
/// The listener a request arrived on decides its caller: a machine's unix socket is that
/// machine's management identity (its file permissions are the access control, as fleet's
/// socket's were); `api_listen` is a network caller; a peer acting for itself (its schedule, its
/// lease, its state reports) is `peer`. Peers pass the caller on in `headerName`; only the peer
/// port reads that header, and only from a peer whose certificate may speak for it.
public struct APICaller: Hashable, Sendable, CustomStringConvertible {
    public enum Kind: String, Hashable, Sendable, CaseIterable {
        /// The unix socket of `machineID`: the management identity.
        case socket
        /// `api_listen` of `machineID`.
        case network
        /// The flotillad of `machineID`, acting for itself.
        case peer
    }

    public var kind: Kind
    /// The machine the caller was met at (whose socket or api_listen it used, or which peer it is).
    public var machineID: String
    /// The ACL token's secret the caller presented (`X-Flotilla-Token` or `Authorization:
    /// Bearer`), passed on to the peer that decides; never printed.
    public var token: String?
    /// The ACL policies of the client certificate the caller presented on `api_listen` (nil:
    /// none). Relayed like the caller itself, in `policiesHeaderName`.
    public var policies: [String]?

    public init(kind: Kind, machineID: String, token: String? = nil, policies: [String]? = nil) {
        self.kind = kind
        self.machineID = machineID
        self.token = token
        self.policies = policies
    }

    public static let policiesHeaderName = "X-Flotilla-Caller-Policies"

    /// The header the ACL token travels in (fleet's clients send none; flotillactl's --token).
    public static let tokenHeaderName = "X-Flotilla-Token"

    /// The token of a request's headers: `X-Flotilla-Token`, else `Authorization: Bearer`.
    public static func token(fromHeaders value: (String) -> String?) -> String? {
        if let token = value(tokenHeaderName), !token.isEmpty { return token }
        guard let authorization = value("Authorization"), authorization.lowercased().hasPrefix("bearer ") else { return nil }
        let token = String(authorization.dropFirst("bearer ".count).drop { $0 == " " })
        return token.isEmpty ? nil : token
    }

    /// The header a peer sends its caller in: `<kind> <machine ID>`.
    public static let headerName = "X-Flotilla-Caller"

    /// The longest machine ID the header carries: Registry's `MachineID.lengthMax` (a test
    /// holds them equal; at 64 a machine with a longer, valid ID could not relay its callers).
    public static let machineIDLengthMax = 128

    public var headerValue: String { "\(kind.rawValue) \(machineID)" }

    /// Parses a header value; nil for anything else than one known kind, one space and a machine
    /// ID of letters, digits, '-', '_' and '.'.
    public init?(headerValue: String) {
        let parts = headerValue.split(separator: " ", omittingEmptySubsequences: false)
        guard parts.count == 2, let kind = Kind(rawValue: String(parts[0])),
              !parts[1].isEmpty, parts[1].utf8.count <= Self.machineIDLengthMax,
              parts[1].utf8.allSatisfy({ Self.isMachineIDByte($0) }) else { return nil }
        self.init(kind: kind, machineID: String(parts[1]))
    }

    private static func isMachineIDByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
             UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "."):
            return true
        default:
            return false
        }
    }

    public var description: String {
        "\(kind.rawValue)@\(machineID)\(token == nil ? "" : " with a token")\(policies.map { " with a certificate for \($0.joined(separator: ","))" } ?? "")"
    }

    /// The caller of the request being answered. The HTTP API binds it for each request; the
    /// client sends it along with every request made while it is bound, which is how a forwarded
    /// request keeps its caller across peers. Nil outside a request (a peer's own loops).
    @TaskLocal public static var current: APICaller?
}
