import UnitFile

/// What a request to the user API does, for deciding whether its caller may.
public enum APIAccess: Hashable, Sendable, CustomStringConvertible {
    /// Any GET of units, states, machines, journals, events, metrics.
    case read
    /// Creating, changing or destroying the unit of this name.
    case writeUnit(String)
    /// Machines (drain, metadata) and the gossip keyring.
    case operate
    /// ACL tokens.
    case manage
    /// `POST /flotilla/v1/acl/bootstrap`: anyone, once (the log refuses a second).
    case bootstrap

    public var description: String {
        switch self {
        case .read: return "read"
        case .writeUnit(let name): return "write unit \(name)"
        case .operate: return "operate machines and the keyring"
        case .manage: return "manage ACL tokens"
        case .bootstrap: return "bootstrap ACLs"
        }
    }
}

/// One right an ACL token grants, written as `management`, `read`, `operator` or
/// `units:<glob>` (Go's path.Match syntax, as fleet's Conflicts=):
/// - `management`: everything, tokens included (the unix socket's identity);
/// - `read`: every read;
/// - `operator`: reads, draining, machine metadata, the gossip keyring;
/// - `units:web-*`: reads, and writes to units whose names match.
public enum ACLPolicy: Hashable, Sendable, CustomStringConvertible {
    case management
    case read
    case operate
    case units(Glob)

    public static let textLengthMax = 255

    public init(parsing text: String) throws(ACLPolicyError) {
        switch text {
        case "management": self = .management
        case "read": self = .read
        case "operator": self = .operate
        default:
            guard text.hasPrefix("units:"), text.utf8.count > "units:".utf8.count, text.utf8.count <= Self.textLengthMax else {
                throw ACLPolicyError(text: text)
            }
            do {
                self = .units(try Glob(String(text.dropFirst("units:".count))))
            } catch {
                throw ACLPolicyError(text: text)
            }
        }
    }

    public var description: String {
        switch self {
        case .management: return "management"
        case .read: return "read"
        case .operate: return "operator"
        case .units(let glob): return "units:\(glob.pattern)"
        }
    }

    public func allows(_ access: APIAccess) -> Bool {
        switch (self, access) {
        case (_, .bootstrap), (.management, _): return true
        case (.read, .read), (.operate, .read), (.operate, .operate), (.units, .read): return true
        case (.units(let glob), .writeUnit(let name)): return glob.matches(name)
        default: return false
        }
    }
}

public struct ACLPolicyError: Error, Hashable, Sendable, CustomStringConvertible {
    public var text: String
    public var description: String {
        "invalid policy \(text.debugDescription): expected management, read, operator or units:<glob> (as units:web-*.service)"
    }
}

extension Array where Element == ACLPolicy {
    public func allows(_ access: APIAccess) -> Bool { contains { $0.allows(access) } }
}

/// An ACL token as the API shows it. `secretID` is the bearer secret: given once, when the token
/// is created (the cluster keeps only its hash); `accessorID` names the token everywhere else.
public struct FlotillaACLToken: Codable, Hashable, Sendable {
    public var accessorID: String
    public var name: String
    public var policies: [String]
    public var secretID: String?

    public init(accessorID: String, name: String, policies: [String], secretID: String? = nil) {
        self.accessorID = accessorID
        self.name = name
        self.policies = policies
        self.secretID = secretID
    }
}

/// `GET /flotilla/v1/acl/tokens`.
public struct FlotillaACLTokenList: Codable, Hashable, Sendable {
    public var tokens: [FlotillaACLToken]
    public init(tokens: [FlotillaACLToken]) { self.tokens = tokens }
}

/// `POST /flotilla/v1/acl/tokens`: a token to create.
public struct FlotillaACLTokenRequest: Codable, Hashable, Sendable {
    public var name: String
    public var policies: [String]

    public init(name: String, policies: [String]) {
        self.name = name
        self.policies = policies
    }
}

/// `POST /flotilla/v1/acl/authorize`: a peer that holds no replica of the log (an agent) asks a
/// voter whether the relayed caller may do `access` (`read`, `write` with `unit`, `operate`,
/// `manage`, `bootstrap`); 204 yes, 401 or 403 no.
public struct FlotillaAuthorizeRequest: Codable, Hashable, Sendable {
    public var access: String
    public var unit: String?

    public init(_ access: APIAccess) {
        switch access {
        case .read: self.access = "read"
        case .writeUnit(let name): self.access = "write"; self.unit = name
        case .operate: self.access = "operate"
        case .manage: self.access = "manage"
        case .bootstrap: self.access = "bootstrap"
        }
    }

    public var decoded: APIAccess? {
        switch (access, unit) {
        case ("read", nil): return .read
        case ("write", let name?): return .writeUnit(name)
        case ("operate", nil): return .operate
        case ("manage", nil): return .manage
        case ("bootstrap", nil): return .bootstrap
        default: return nil
        }
    }
}
