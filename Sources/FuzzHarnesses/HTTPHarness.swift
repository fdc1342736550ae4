import FleetAPI
@testable import HTTPAPI
import Foundation
import Logging
import NIOCore
import NIOEmbedded
import NIOHTTP1
import UnitFile

/// A raw HTTP/1.1 request: through NIO's request parser (the server's own), assembled as the
/// connection does, then routed, validated and answered by the API's handler against a backend
/// that holds one unit and one machine. The answer must be a well-formed status: a 5xx for a
/// request the backend never failed is a bug.
enum HTTPHarness {
    static let handler = APIRequestHandler(backend: FuzzBackend(), configuration: HTTPAPIConfiguration(),
                                           logger: Logger(label: "fuzz", factory: { _ in SwiftLogNoOpLogHandler() }))

    static func request(_ bytes: [UInt8]) {
        for (request, status) in answers(bytes) {
            require((200...599).contains(status), "status \(status) for \(request.method) \(request.target)")
            require(status < 500 || status == 503 || status == 507, "status \(status) for \(request.method) \(request.target)")
        }
    }

    /// The requests the bytes hold (at most 4), each answered on a user listener and on the
    /// plain peer port.
    static func answers(_ bytes: [UInt8]) -> [(request: APIRequest, status: Int)] {
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(HTTPRequestDecoder(leftOverBytesStrategy: .dropBytes)))
        defer { _ = try? channel.finish() }
        var buffer = channel.allocator.buffer(capacity: bytes.count)
        buffer.writeBytes(bytes)
        _ = try? channel.writeInbound(buffer)
        var requests: [APIRequest] = []
        var head: HTTPRequestHead?
        var body: [UInt8] = []
        while let part = try? channel.readInbound(as: HTTPServerRequestPart.self) {
            switch part {
            case .head(let next):
                head = next
                body = []
            case .body(let chunk):
                body.append(contentsOf: chunk.readableBytesView)
            case .end:
                if let head, requests.count < 4 {
                    requests.append(APIRequest(method: head.method, target: APIRequest.originForm(of: head.uri), headers: head.headers, body: body))
                }
                head = nil
            }
        }
        var result: [(request: APIRequest, status: Int)] = []
        for request in requests {
            for origin in [ConnectionOrigin.user(APICaller(kind: .socket, machineID: "fuzz")), .unverifiedPeer] {
                result.append((request, answer(request, origin: origin)))
            }
        }
        return result
    }

    /// Runs the async handler to completion from libFuzzer's synchronous callback. The caller's
    /// thread blocks, so the handler runs on the global pool, never on an executor the caller
    /// may be holding (a test calls this from a thread of its own).
    static func answer(_ request: APIRequest, origin: ConnectionOrigin) -> Int {
        let done = DispatchSemaphore(value: 0)
        let status = LockedStatus()
        Task(executorPreference: globalConcurrentExecutor) {
            let response = await handler.respond(to: request, origin: origin)
            switch response {
            case .complete(let code, _, _): status.set(Int(code.code))
            case .lineStream: status.set(200)
            }
            done.signal()
        }
        done.wait()
        return status.get()
    }
}

final class LockedStatus: @unchecked Sendable {
    private let lock = NSLock()
    private var value = 0
    func set(_ status: Int) { lock.withLock { value = status } }
    func get() -> Int { lock.withLock { value } }
}

/// Answers every call from a fixed picture: one unit, one machine, no events. Writes succeed
/// and change nothing; that is enough for the HTTP layer, which is what is fuzzed.
struct FuzzBackend: APIBackend {
    static let unit = FleetUnit(name: "web.service", options: [FleetUnitOption(section: "Service", name: "ExecStart", value: "/bin/true")],
                                desiredState: .launched, currentState: .launched, machineID: "m1")

    func listUnits() async throws(APIError) -> [FleetUnit] { [Self.unit] }
    func unit(named name: UnitName) async throws(APIError) -> FleetUnit? { name.rawValue == Self.unit.name ? Self.unit : nil }
    func putUnit(_ request: PutUnitRequest) async throws(APIError) -> PutUnitOutcome { request.name.rawValue == Self.unit.name ? .modified : .created }
    func destroyUnit(named name: UnitName) async throws(APIError) {
        if name.rawValue != Self.unit.name { throw .notFound("unit \(name) does not exist") }
    }
    func unitStates(machineID: String?, unitName: String?) async throws(APIError) -> [FleetUnitState] {
        [FleetUnitState(name: "web.service", hash: "h", machineID: "m1", systemdLoadState: "loaded", systemdActiveState: "active", systemdSubState: "running")]
    }
    func listMachines() async throws(APIError) -> [FleetMachine] { [FleetMachine(id: "m1", primaryIP: "10.0.0.1", metadata: [:])] }
    func changeMachineMetadata(_ changes: [MachineMetadataChange]) async throws(APIError) {}
    func clusterStatus() async throws(APIError) -> FlotillaClusterStatus {
        FlotillaClusterStatus(leaderMachineID: "m1", term: 1, commitIndex: 1, appliedIndex: 1, registryVersion: 1, voters: ["10.0.0.1"], answeredBy: "m1")
    }
    func listMachinesDetailed() async throws(APIError) -> [FlotillaMachine] {
        [FlotillaMachine(id: "m1", primaryIP: "10.0.0.1", metadata: [:], role: "voter", state: "alive", isDrained: false, unitCount: 1)]
    }
    func listUnitFiles() async throws(APIError) -> [FlotillaUnitFile] { [] }
    func setDrained(machineID: String, isDrained: Bool) async throws(APIError) {}
    func events(afterIndex: UInt64, waitMilliseconds: Int) async throws(APIError) -> FlotillaEventPage {
        FlotillaEventPage(events: [], lastIndex: afterIndex, isTruncated: false)
    }
    func journal(unit: UnitName, lines: Int, output: JournalOutput) async throws(APIError) -> FlotillaJournal {
        FlotillaJournal(unit: unit.rawValue, machineID: "m1", lines: [])
    }
    func followJournal(unit: UnitName, lines: Int, output: JournalOutput) async throws(APIError) -> AsyncThrowingStream<String, any Error> {
        AsyncThrowingStream { $0.finish() }
    }
    func status(unit: UnitName) async throws(APIError) -> FlotillaUnitStatus { FlotillaUnitStatus(unit: unit.rawValue, machineID: "m1", text: "") }
    func schedule(machineID: String, afterVersion: UInt64, waitMilliseconds: Int) async throws(APIError) -> MachineSchedule {
        MachineSchedule(machineID: machineID, version: afterVersion, leaderTerm: 1, units: [])
    }
    func reportStates(_ report: StateReport) async throws(APIError) {}
    func renewLease(_ request: LeaseRenewalRequest) async throws(APIError) -> LeaseRenewalAnswer {
        LeaseRenewalAnswer(voter: "10.0.0.1", answer: "granted", epoch: request.epoch, voters: ["10.0.0.1"])
    }
    func leaseWithholds() async throws(APIError) -> LeaseWithholdsReport { LeaseWithholdsReport(voter: "10.0.0.1", withholds: []) }
    func releaseLease(_ request: LeaseReleaseRequest) async throws(APIError) {}
    func authorize(_ caller: APICaller, for access: APIAccess) async throws(APIError) {}
    func bootstrapACL() async throws(APIError) -> FlotillaACLToken { throw .conflict("ACLs are already bootstrapped") }
    func listACLTokens() async throws(APIError) -> [FlotillaACLToken] { [] }
    func createACLToken(_ request: FlotillaACLTokenRequest) async throws(APIError) -> FlotillaACLToken {
        FlotillaACLToken(accessorID: "a", name: request.name, policies: request.policies, secretID: "s")
    }
    func deleteACLToken(accessorID: String) async throws(APIError) { throw .notFound("no ACL token \(accessorID)") }
    func gossipKeyring() async throws(APIError) -> FlotillaGossipKeyring { FlotillaGossipKeyring(keys: [], isReplicated: true) }
    func changeGossipKeyring(_ change: FlotillaKeyringChange) async throws(APIError) {}
    func metricsText() async -> String { "flotilla_up 1\n" }
}
