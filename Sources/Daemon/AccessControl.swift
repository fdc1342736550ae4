import Client
import Crypto
import FleetAPI
import Foundation
import HTTPAPI
import Registry

/// ACL tokens, as Nomad's and Consul's: a caller on `api_listen` presents a token (`X-Flotilla-
/// Token` or `Authorization: Bearer`), and what the token's policies allow is all it may do.
/// A machine's unix socket is the management identity (its file permissions are the check, as
/// fleet's socket's were), and so is a peer relaying its own socket's caller.
///
/// The log holds each token's SHA-256, never the secret. The peer that decides is any member of
/// the Raft group, from its replica (a token deleted a few milliseconds ago may still pass on a
/// follower that has not applied the deletion yet); a peer outside the group (an agent) asks a
/// voter, relaying the caller over the peer port.
enum AccessControl {
    static func secretHash(_ secret: String) -> [UInt8] { Array(SHA256.hash(data: Array(secret.utf8))) }

    /// A fresh random identifier: `bytes` random bytes, hex.
    static func randomHex(bytes: Int) -> String {
        var generator = SystemRandomNumberGenerator()
        return (0..<bytes).map { _ in String(format: "%02x", UInt8.random(in: 0...255, using: &generator)) }.joined()
    }

    /// The decision for `caller` against the registry's tokens. Pure.
    static func decide(_ caller: APICaller, _ access: APIAccess, tokens state: RegistryState) throws(APIError) {
        switch caller.kind {
        case .socket, .peer: return
        case .network: break
        }
        if access == .bootstrap { return }
        // A client certificate of the cluster's CA speaks for itself (its policies are in it);
        // a token, when given too, decides instead.
        if caller.token == nil, let certificate = caller.policies {
            let policies = certificate.compactMap { try? ACLPolicy(parsing: $0) }
            guard policies.allows(access) else {
                throw APIError(status: 403, message: "the client certificate (\(certificate.joined(separator: ", "))) may not \(access)")
            }
            return
        }
        guard let secret = caller.token else {
            throw APIError(status: 401, message: "this API needs an ACL token (X-Flotilla-Token, Authorization: Bearer, flotillactl --token or FLOTILLACTL_TOKEN) or a client certificate of the cluster's CA to \(access)")
        }
        guard let record = state.aclToken(secretHash: secretHash(secret)) else {
            throw APIError(status: 403, message: "ACL token not found")
        }
        let policies = record.policies.compactMap { try? ACLPolicy(parsing: $0) }
        guard policies.allows(access) else {
            throw APIError(status: 403, message: "ACL token \(record.accessorID) (\(record.name.isEmpty ? "no name" : record.name); \(record.policies.joined(separator: ", "))) may not \(access)")
        }
    }

    static func view(_ record: ACLTokenRecord, secret: String? = nil) -> FlotillaACLToken {
        FlotillaACLToken(accessorID: record.accessorID, name: record.name, policies: record.policies, secretID: secret)
    }
}

extension DaemonBackend {
    func authorize(_ caller: APICaller, for access: APIAccess) async throws(APIError) {
        guard caller.kind == .network else { return }
        do throws(APIError) {
            if await node.leadership().isMember, let registry = node.registry {
                try AccessControl.decide(caller, access, tokens: registry.current)
                return
            }
            // No replica here: a voter decides, for the caller relayed to it.
            do {
                try await APICaller.$current.withValue(caller) {
                    try await node.forward { client throws(ClientError) in try await client.authorize(access) }
                }
            } catch let error as APIError {
                throw error
            } catch {
                throw APIError.internalError("\(error)")
            }
        } catch {
            if error.status == 401 || error.status == 403 {
                node.metrics.withLock { $0.aclRefusals[error.status, default: 0] += 1 }
            }
            throw error
        }
    }

    func bootstrapACL() async throws(APIError) -> FlotillaACLToken {
        guard let (voter, _) = try await leaderRegistry() else {
            return try await node.forward { client throws(ClientError) in try await client.bootstrapACL() }
        }
        return try await create(voter, FlotillaACLTokenRequest(name: "bootstrap management token", policies: ["management"]), bootstrap: true)
    }

    func listACLTokens() async throws(APIError) -> [FlotillaACLToken] {
        guard let state = try await readRegistry() else {
            return try await node.forward { client throws(ClientError) in try await client.listACLTokens() }
        }
        return state.aclTokens.keys.sorted().map { AccessControl.view(state.aclTokens[$0]!) }
    }

    func createACLToken(_ request: FlotillaACLTokenRequest) async throws(APIError) -> FlotillaACLToken {
        guard let (voter, _) = try await leaderRegistry() else {
            return try await node.forward { client throws(ClientError) in try await client.createACLToken(request) }
        }
        return try await create(voter, request, bootstrap: false)
    }

    func deleteACLToken(accessorID: String) async throws(APIError) {
        guard let (voter, _) = try await leaderRegistry() else {
            try await node.forward { client throws(ClientError) in try await client.deleteACLToken(accessorID: accessorID) }
            return
        }
        _ = try await propose(voter, .deleteACLToken(accessorID: accessorID))
    }

    /// The secret is made here, on the leader, and leaves it only in this answer.
    private func create(_ voter: Voter, _ request: FlotillaACLTokenRequest, bootstrap: Bool) async throws(APIError) -> FlotillaACLToken {
        let secret = AccessControl.randomHex(bytes: 32)
        let record = ACLTokenRecord(accessorID: AccessControl.randomHex(bytes: 16), secretHash: AccessControl.secretHash(secret),
                                    name: request.name, policies: request.policies)
        _ = try await propose(voter, .createACLToken(record, bootstrap: bootstrap))
        node.logger.notice("ACL token created", metadata: [
            "accessor": "\(record.accessorID)", "policies": "\(record.policies)", "caller": "\(APICaller.current.map { "\($0)" } ?? "-")",
        ])
        return AccessControl.view(record, secret: secret)
    }
}
