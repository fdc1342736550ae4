import TestSupport
import FleetAPI
import HTTPAPI
import Registry
import Testing

@testable import Daemon

/// Who may do what, decided against the registry's tokens (pure).
@Suite(.onBackgroundThreads) struct AccessControlDecisionTests {
    func state(_ tokens: [(String, [String])]) -> RegistryState {
        var state = RegistryState()
        for (index, (secret, policies)) in tokens.enumerated() {
            _ = state.apply(RegistryCommand(.createACLToken(ACLTokenRecord(accessorID: "a\(index)", secretHash: AccessControl.secretHash(secret),
                                                                           name: "t\(index)", policies: policies), bootstrap: index == 0)),
                            at: UInt64(index + 1))
        }
        return state
    }

    func status(_ caller: APICaller, _ access: APIAccess, _ state: RegistryState) -> Int {
        do {
            try AccessControl.decide(caller, access, tokens: state)
            return 200
        } catch {
            return error.status
        }
    }

    @Test func networkCallersNeedATokenThatAllowsTheRequest() {
        let tokens = state([("root", ["management"]), ("reader", ["read"]), ("web", ["units:web-*.service"])])
        func network(_ token: String?) -> APICaller { APICaller(kind: .network, machineID: "m1", token: token) }
        #expect(status(network(nil), .read, tokens) == 401)
        #expect(status(network("guess"), .read, tokens) == 403)
        #expect(status(network("reader"), .read, tokens) == 200)
        #expect(status(network("reader"), .writeUnit("web-1.service"), tokens) == 403)
        #expect(status(network("web"), .writeUnit("web-1.service"), tokens) == 200)
        #expect(status(network("web"), .writeUnit("db.service"), tokens) == 403)
        #expect(status(network("web"), .manage, tokens) == 403)
        #expect(status(network("root"), .manage, tokens) == 200)
        #expect(status(network(nil), .bootstrap, tokens) == 200, "bootstrap is for anyone; the log refuses a second")
    }

    @Test func theSocketAndPeersNeedNoToken() {
        let none = state([])
        #expect(status(APICaller(kind: .socket, machineID: "m1"), .manage, none) == 200)
        #expect(status(APICaller(kind: .peer, machineID: "m1"), .writeUnit("x.service"), none) == 200)
    }

    @Test func aclRejectionsMapToFleetStatuses() {
        #expect(DaemonBackend.apiError(.aclAlreadyBootstrapped).status == 409)
        #expect(DaemonBackend.apiError(.tooManyACLTokens(limit: 1)).status == 409)
        #expect(DaemonBackend.apiError(.aclTokenNotFound("a1")).status == 404)
        #expect(DaemonBackend.apiError(.invalidACLToken("a name")).status == 400)
    }

    @Test func secretsAreHashedAndRandom() {
        #expect(AccessControl.secretHash("a") != AccessControl.secretHash("b") && AccessControl.secretHash("a").count == 32)
        let secrets = Set((0..<100).map { _ in AccessControl.randomHex(bytes: 32) })
        #expect(secrets.count == 100 && secrets.allSatisfy { $0.count == 64 })
    }
}
