import ClusterCertificates
import FleetAPI

/// Whom a server is for.
public enum APIAudience: Sendable {
    /// People and their tools (the unix socket, `api_listen`): every route. A request's caller is
    /// the listener's (`socket` or `network` of `machineID`, this machine), whatever it sends.
    case users(machineID: String)
    /// The other peers (`peer_port`): peer routes and relayed requests, nothing else. With `tls`
    /// every connection is mutual TLS 1.3 against the cluster's CA and each request's caller is
    /// decided by `PeerAccess` from the certificate. Without (`peer_insecure_plaintext`), the
    /// caller header is believed: anyone who reaches the port can act as anyone.
    case peers(tls: PeerTLS?)
}

/// Where one connection's requests come from, for deciding their caller.
enum ConnectionOrigin: Sendable {
    /// A user listener: this is the caller of every request on it.
    case user(APICaller)
    /// The peer port over mutual TLS; nil when the peer's certificate carries no Flotilla role.
    case verifiedPeer(PeerIdentity?)
    /// The peer port in plain TCP.
    case unverifiedPeer
}

/// Which requests the peer port serves, and for whom. Pure: the route, the caller header and the
/// certificate in, the caller the request is answered for (or the refusal) out.
///
/// The rules, Consul's and Nomad's for servers relaying agents' RPCs:
/// - a client certificate (`client.flotilla`) is for `api_listen`, never for the peer port;
/// - a peer's own routes (its schedule, state reports, lease) are served for the machine the
///   path names only: to that machine's own certificate, or relayed by a server;
/// - the voters' lease ledgers (`lease-withholds`) are read by servers (the leader) only;
/// - a user's request (the fleet API, journals, status) is served only when relayed, with the
///   caller it was made by: a peer relays callers met on its own machine, a server relays any
///   (an agent's request reaches the leader through a voter);
/// - `/metrics` is served to any peer.
enum PeerAccess {
    /// `token` is the ACL token the request carries (`X-Flotilla-Token` or a bearer token).
    /// `policies` is the relayed caller's certificate policies header, read only from peers.
    static func caller(for route: Route, header: String?, token: String? = nil, policies: String? = nil,
                       origin: ConnectionOrigin) -> Result<APICaller, APIError> {
        // A user listener's caller is the listener's; a header claiming another is not read.
        if case .user(var caller) = origin {
            // A token matters on api_listen only: the unix socket is the management identity.
            if caller.kind == .network {
                // A peer's own routes carry no ACL (a certificate decides them on the peer port),
                // so served here they were open to anyone who reached api_listen, token or not:
                // any machine's schedule (its gossip keys with it), forged state reports, and
                // lease releases that make the leader move a machine's units.
                if route.isPeerRoute {
                    return .failure(forbidden("/flotilla/v1/peer/ routes are served on the peer port only"))
                }
                caller.token = token
            }
            return .success(caller)
        }
        let claimed: APICaller?
        if let header {
            guard var parsed = APICaller(headerValue: header) else {
                return .failure(.badRequest("\(APICaller.headerName) must be \"<\(APICaller.Kind.allCases.map(\.rawValue).joined(separator: "|"))> <machine ID>\", got \(header.debugDescription)"))
            }
            parsed.token = token
            if let policies {
                let list = policies.split(separator: ",").map(String.init)
                guard !list.isEmpty, list.count <= 16, policies.utf8.count <= 4096 else {
                    return .failure(.badRequest("\(APICaller.policiesHeaderName) must be 1 to 16 comma-separated policies"))
                }
                parsed.policies = list
            }
            claimed = parsed
        } else {
            claimed = nil
        }
        switch origin {
        case .user(let caller):
            return .success(caller)
        case .unverifiedPeer:
            // Nothing proves anything here: serve as before, for whoever the header names.
            return .success(claimed ?? APICaller(kind: .peer, machineID: "-"))
        case .verifiedPeer(let identity):
            guard let identity, identity.role.isPeer, let machine = identity.machineID else {
                return .failure(forbidden("the peer port serves Flotilla's peers; this certificate is \(identity.map { "a \($0.role.rawValue) certificate" } ?? "not a Flotilla one"): send user requests to the unix socket or api_listen"))
            }
            return decide(route, claimed: claimed, machine: machine, isServer: identity.role == .server)
        }
    }

    private static func decide(_ route: Route, claimed: APICaller?, machine: String, isServer: Bool) -> Result<APICaller, APIError> {
        let caller = claimed ?? APICaller(kind: .peer, machineID: machine)
        // Only a server relays callers met elsewhere.
        if caller.machineID != machine, !isServer {
            return .failure(forbidden("machine \(machine)'s certificate (an agent's) cannot speak for \(caller): only servers relay"))
        }
        switch route.peerScope {
        case .machine(let pathMachine):
            guard caller.kind == .peer, caller.machineID == pathMachine else {
                return .failure(forbidden("\(caller) cannot use machine \(pathMachine)'s peer routes"))
            }
            return .success(caller)
        case .servers:
            guard isServer, claimed == nil else { return .failure(forbidden("only servers read the voters' lease ledgers")) }
            return .success(caller)
        case .anyPeer:
            return .success(caller)
        case .user:
            guard caller.kind != .peer else {
                return .failure(forbidden("the peer port answers user requests only when a peer relays them; send them to the unix socket or api_listen"))
            }
            return .success(caller)
        }
    }

    static func forbidden(_ message: String) -> APIError { APIError(status: 403, message: message) }
}

/// Who may use a route on the peer port (see `PeerAccess`).
enum PeerScope: Equatable {
    /// The routes of the peer of this machine ID.
    case machine(String)
    /// Servers only.
    case servers
    case anyPeer
    /// A user's request, relayed.
    case user
}

extension Route {
    var peerScope: PeerScope {
        switch self {
        case .schedule(let machine), .reportStates(let machine), .renewLease(let machine), .releaseLease(let machine):
            return .machine(machine)
        case .leaseWithholds:
            return .servers
        case .metrics:
            return .anyPeer
        case .listUnits, .getUnit, .putUnit, .deleteUnit, .listStates, .listMachines, .patchMachines, .discovery, .openAPI,
             .clusterStatus, .listMachinesDetailed, .listUnitFiles, .drain, .undrain, .watch, .journal, .unitStatus,
             .gossipKeyring, .changeGossipKeyring, .aclBootstrap, .listACLTokens, .createACLToken, .deleteACLToken, .authorize:
            return .user
        }
    }

    /// A peer's own route or the voters' ledgers: what only peers use, over the peer port.
    var isPeerRoute: Bool {
        switch peerScope {
        case .machine, .servers: return true
        case .anyPeer, .user: return false
        }
    }

    /// What the route does, for the caller's ACL token; nil for peer routes (a peer's certificate
    /// decides those) and for `authorize`, which checks the access its body names.
    var access: APIAccess? {
        switch self {
        case .listUnits, .getUnit, .listStates, .listMachines, .discovery, .openAPI, .clusterStatus, .listMachinesDetailed,
             .listUnitFiles, .watch, .journal, .unitStatus, .metrics:
            return .read
        case .putUnit(let name), .deleteUnit(let name):
            return .writeUnit(name)
        case .patchMachines, .drain, .undrain, .gossipKeyring, .changeGossipKeyring:
            return .operate
        case .listACLTokens, .createACLToken, .deleteACLToken:
            return .manage
        case .aclBootstrap:
            return .bootstrap
        case .schedule, .reportStates, .renewLease, .releaseLease, .leaseWithholds, .authorize:
            return nil
        }
    }
}
