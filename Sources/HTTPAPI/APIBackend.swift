import FleetAPI
import UnitFile

/// How fresh a read must be, from `?consistency=` on any request (absent: `leader`).
/// - `leader`: answered by the leader, which holds every committed change and the unit states
///   reported by the agents (fleet's behaviour: one source of truth).
/// - `local`: answered from this peer's own replica of the registry, which may be a few
///   milliseconds behind the leader but answers without a round trip, and still answers while
///   the cluster has no leader. Units then carry no `currentState` unless this peer leads.
/// The HTTP layer binds it for the duration of each request; backends read `current`.
public enum ReadConsistency: String, Sendable, CaseIterable {
    case leader
    case local

    @TaskLocal public static var current: ReadConsistency = .leader
}

/// An error the API turns into fleet's error entity with this HTTP status.
public struct APIError: Error, Hashable, Sendable, CustomStringConvertible {
    public var status: Int
    public var message: String

    public init(status: Int, message: String) {
        self.status = status
        self.message = message
    }

    public static func badRequest(_ message: String) -> APIError { APIError(status: 400, message: message) }
    public static func notFound(_ message: String) -> APIError { APIError(status: 404, message: message) }
    public static func conflict(_ message: String) -> APIError { APIError(status: 409, message: message) }
    /// No leader is known, or this peer cannot reach it: the client may retry.
    public static func unavailable(_ message: String) -> APIError { APIError(status: 503, message: message) }
    public static func internalError(_ message: String) -> APIError { APIError(status: 500, message: message) }

    public var description: String { "\(status) \(message)" }
}

/// How a `PUT /fleet/v1/units/<name>` ended: fleet answers 201 for a new unit, 204 otherwise.
public enum PutUnitOutcome: Hashable, Sendable {
    case created
    case modified
}

/// A validated `PUT /fleet/v1/units/<name>`: the HTTP layer has parsed the name, the target
/// state and (if options were sent) the unit file; the backend decides what they mean against
/// the registry (create, change target state, replace the file, or 409).
public struct PutUnitRequest: Hashable, Sendable {
    public var name: UnitName
    /// nil when the request named none: fleetctl creates a unit without one, then sets it.
    public var desiredState: FleetUnitTargetState?
    /// nil when the request carried no options (a target-state change of an existing unit).
    public var unitFile: UnitFile?

    public init(name: UnitName, desiredState: FleetUnitTargetState?, unitFile: UnitFile?) {
        self.name = name
        self.desiredState = desiredState
        self.unitFile = unitFile
    }
}

/// One validated metadata change of `PATCH /fleet/v1/machines` (JSON-Patch add/replace/remove).
public struct MachineMetadataChange: Hashable, Sendable {
    public enum Operation: Hashable, Sendable {
        case set(String)
        case remove
    }
    public var machineID: String
    public var key: String
    public var operation: Operation

    public init(machineID: String, key: String, operation: Operation) {
        self.machineID = machineID
        self.key = key
        self.operation = operation
    }
}

/// What the HTTP layer needs from the daemon. The HTTP layer owns parsing, validation, paging,
/// status codes and fleet's error shape; the backend owns meaning (reading the registry,
/// forwarding writes to the leader, asking a machine's agent for journal and status).
///
/// Every method may be called concurrently. Lists are returned whole and sorted (by unit name,
/// or machine ID then unit name); the HTTP layer cuts them into pages.
public protocol APIBackend: Sendable {
    // fleet v1
    func listUnits() async throws(APIError) -> [FleetUnit]
    func unit(named name: UnitName) async throws(APIError) -> FleetUnit?
    func putUnit(_ request: PutUnitRequest) async throws(APIError) -> PutUnitOutcome
    /// Throws `.notFound` for an unknown unit.
    func destroyUnit(named name: UnitName) async throws(APIError)
    func unitStates(machineID: String?, unitName: String?) async throws(APIError) -> [FleetUnitState]
    func listMachines() async throws(APIError) -> [FleetMachine]
    /// Applied in order, all or nothing.
    func changeMachineMetadata(_ changes: [MachineMetadataChange]) async throws(APIError)

    // Flotilla's additions (/flotilla/v1)
    func clusterStatus() async throws(APIError) -> FlotillaClusterStatus
    func listMachinesDetailed() async throws(APIError) -> [FlotillaMachine]
    func listUnitFiles() async throws(APIError) -> [FlotillaUnitFile]
    func setDrained(machineID: String, isDrained: Bool) async throws(APIError)
    /// Waits up to `waitMilliseconds` for an event after `afterIndex`.
    func events(afterIndex: UInt64, waitMilliseconds: Int) async throws(APIError) -> FlotillaEventPage
    func journal(unit: UnitName, lines: Int, output: JournalOutput) async throws(APIError) -> FlotillaJournal
    /// Journal lines as they are written, until the client goes away (the stream ends) or the
    /// unit's machine stops answering (the stream throws).
    func followJournal(unit: UnitName, lines: Int, output: JournalOutput) async throws(APIError) -> AsyncThrowingStream<String, any Error>
    func status(unit: UnitName) async throws(APIError) -> FlotillaUnitStatus

    // Peer endpoints (/flotilla/v1/peer)
    func schedule(machineID: String, afterVersion: UInt64, waitMilliseconds: Int) async throws(APIError) -> MachineSchedule
    func reportStates(_ report: StateReport) async throws(APIError)
    /// Answered by this peer's own lease ledger (a voter), never forwarded.
    func renewLease(_ request: LeaseRenewalRequest) async throws(APIError) -> LeaseRenewalAnswer
    /// This peer's durable lease withholds (a voter's), for the leader.
    func leaseWithholds() async throws(APIError) -> LeaseWithholdsReport
    /// Forwarded to the leader, which revokes the lease at the given epoch.
    func releaseLease(_ request: LeaseReleaseRequest) async throws(APIError)

    /// Whether `caller` may do `access`: returns, or throws 401 (no credentials) or 403. Called
    /// before every user route; the unix socket's caller is the management identity.
    func authorize(_ caller: APICaller, for access: APIAccess) async throws(APIError)
    /// `POST /flotilla/v1/acl/bootstrap`: the first management token, once.
    func bootstrapACL() async throws(APIError) -> FlotillaACLToken
    func listACLTokens() async throws(APIError) -> [FlotillaACLToken]
    /// The new token, its secret included (the only time it is shown).
    func createACLToken(_ request: FlotillaACLTokenRequest) async throws(APIError) -> FlotillaACLToken
    func deleteACLToken(accessorID: String) async throws(APIError)

    /// `GET /flotilla/v1/keyring`: the gossip keys by fingerprint.
    func gossipKeyring() async throws(APIError) -> FlotillaGossipKeyring
    /// `POST /flotilla/v1/keyring`: one rotation step, committed to the replicated log (on the
    /// leader) and taken up by every machine from its schedule.
    func changeGossipKeyring(_ change: FlotillaKeyringChange) async throws(APIError)

    // Operations
    /// `GET /metrics`: this peer's metrics in Prometheus's text exposition format (0.0.4).
    func metricsText() async -> String
    /// A request the peer port refused for its caller (its status: 400 or 403; 0 for a refused
    /// TLS handshake), already logged: for metrics.
    func requestRefused(status: Int)
}

extension APIBackend {
    public func requestRefused(status: Int) {}
}
