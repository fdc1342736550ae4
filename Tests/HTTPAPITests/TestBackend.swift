import FleetAPI
import HTTPAPI
import Locking
import UnitFile

/// An in-memory stand-in for the daemon: enough meaning to exercise every route (fleet's 409
/// on a create without options, 404s, filters), and a record of what the HTTP layer passed in.
/// The real daemon is tested end to end elsewhere.
actor TestBackend: APIBackend {
    var units: [String: FleetUnit] = [:]
    var states: [FleetUnitState] = []
    var machines: [FleetMachine] = []
    var metadataChanges: [[MachineMetadataChange]] = []
    var drained: [String: Bool] = [:]
    var reports: [StateReport] = []
    var lastPut: PutUnitRequest?
    var lastWaitMilliseconds: Int?
    var journalLines: [String] = ["line one", "line two"]
    /// The continuation of the followed journal, and whether its consumer went away.
    var followContinuation: AsyncThrowingStream<String, any Error>.Continuation?
    var followTerminations: [String] = []
    private var followTerminationWaiters: [CheckedContinuation<Void, Never>] = []
    private var followStartWaiters: [CheckedContinuation<Void, Never>] = []
    /// The caller the HTTP layer bound (`APICaller.current`) for the last call of each method
    /// that records it (listUnits, putUnit, schedule, leaseWithholds).
    var callers: [String: APICaller] = [:]
    /// The statuses of the requests the server refused (0: a TLS handshake).
    nonisolated let refusedStatuses = Locked<[Int]>([])

    nonisolated func requestRefused(status: Int) { refusedStatuses.withLock { $0.append(status) } }

    /// The idempotency key each method last ran under (`WriteID.current`).
    var writeIDs: [String: WriteID] = [:]
    private func recordCaller(_ method: String) {
        callers[method] = APICaller.current
        writeIDs[method] = WriteID.current
    }

    func setUnits(_ units: [FleetUnit]) { self.units = Dictionary(uniqueKeysWithValues: units.map { ($0.name, $0) }) }
    func setStates(_ states: [FleetUnitState]) { self.states = states }
    func setMachines(_ machines: [FleetMachine]) { self.machines = machines }

    func listUnits() async throws(APIError) -> [FleetUnit] {
        recordCaller("listUnits")
        return units.values.sorted { $0.name < $1.name }
    }

    func unit(named name: UnitName) async throws(APIError) -> FleetUnit? { units[name.rawValue] }

    func putUnit(_ request: PutUnitRequest) async throws(APIError) -> PutUnitOutcome {
        recordCaller("putUnit")
        lastPut = request
        let name = request.name.rawValue
        let existing: UnitPutRules.Existing = units[name].map { unit in
            let hash = ((try? UnitFile(fleetOptions: unit.options)) ?? UnitFile(sections: [])).hash
            return request.name.form == .template ? .template(hash: hash) : .unit(hash: hash)
        } ?? .none
        switch try UnitPutRules.decide(request, existing: existing, templateOfInstanceExists: false) {
        case .create(let file, let target):
            units[name] = FleetUnit(name: name, options: file.fleetOptions, desiredState: target)
            return .created
        case .createInstanceOfTemplate:
            throw .internalError("no templates here")
        case .update(let file, let target):
            if let file { units[name]?.options = file.fleetOptions }
            if let target { units[name]?.desiredState = target }
            return .modified
        }
    }

    func destroyUnit(named name: UnitName) async throws(APIError) {
        recordCaller("destroyUnit")
        guard units.removeValue(forKey: name.rawValue) != nil else { throw .notFound("unit does not exist") }
    }

    func unitStates(machineID: String?, unitName: String?) async throws(APIError) -> [FleetUnitState] {
        states.filter { (machineID == nil || $0.machineID == machineID) && (unitName == nil || $0.name == unitName) }
    }

    func listMachines() async throws(APIError) -> [FleetMachine] { machines }

    func changeMachineMetadata(_ changes: [MachineMetadataChange]) async throws(APIError) {
        metadataChanges.append(changes)
    }

    func clusterStatus() async throws(APIError) -> FlotillaClusterStatus {
        FlotillaClusterStatus(leaderMachineID: "m1", term: 3, commitIndex: 40, appliedIndex: 39, registryVersion: 12,
                              voters: ["m1", "m2", "m3"], answeredBy: "m2")
    }

    func listMachinesDetailed() async throws(APIError) -> [FlotillaMachine] {
        [FlotillaMachine(id: "m1", primaryIP: "10.0.0.1", metadata: ["region": "eu"], role: "voter", state: "alive",
                         isDrained: drained["m1"] ?? false, unitCount: 2)]
    }

    func listUnitFiles() async throws(APIError) -> [FlotillaUnitFile] {
        [FlotillaUnitFile(name: "web@1.service", hash: "abc", desiredState: .launched, currentState: nil, machineID: nil,
                          isGlobal: false, unscheduledReason: "no machine matches MachineMetadata=region=us")]
    }

    func setDrained(machineID: String, isDrained: Bool) async throws(APIError) {
        guard machineID == "m1" else { throw .notFound("machine \(machineID) not found") }
        drained[machineID] = isDrained
    }

    func events(afterIndex: UInt64, waitMilliseconds: Int) async throws(APIError) -> FlotillaEventPage {
        lastWaitMilliseconds = waitMilliseconds
        let event = FlotillaEvent(index: afterIndex + 1, kind: .machine, subject: "m1")
        return FlotillaEventPage(events: [event], lastIndex: afterIndex + 1, isTruncated: false)
    }

    func journal(unit: UnitName, lines: Int, output: JournalOutput) async throws(APIError) -> FlotillaJournal {
        if unit.rawValue == "failing.service" { throw .internalError("agent on m9 did not answer") }
        guard units[unit.rawValue] != nil || unit.form == .instance else { throw .notFound("unit does not exist") }
        return FlotillaJournal(unit: unit.rawValue, machineID: "m1", lines: Array(journalLines.suffix(lines)))
    }

    func followJournal(unit: UnitName, lines: Int, output: JournalOutput) async throws(APIError) -> AsyncThrowingStream<String, any Error> {
        let (stream, continuation) = AsyncThrowingStream<String, any Error>.makeStream()
        let name = unit.rawValue
        continuation.onTermination = { termination in
            Task { await self.followEnded(unit: name, termination: termination) }
        }
        followContinuation = continuation
        for waiter in followStartWaiters { waiter.resume() }
        followStartWaiters = []
        return stream
    }

    private func followEnded(unit: String, termination: AsyncThrowingStream<String, any Error>.Continuation.Termination) {
        switch termination {
        case .cancelled: followTerminations.append("\(unit) cancelled")
        case .finished: followTerminations.append("\(unit) finished")
        @unknown default: followTerminations.append("\(unit) unknown")
        }
        for waiter in followTerminationWaiters { waiter.resume() }
        followTerminationWaiters = []
    }

    /// Returns once a followed journal stream has been handed out.
    func waitForFollower() async {
        if followContinuation != nil { return }
        await withCheckedContinuation { followStartWaiters.append($0) }
    }

    /// Returns once a followed journal stream has been terminated (by cancellation or its end).
    func waitForFollowTermination() async {
        if !followTerminations.isEmpty { return }
        await withCheckedContinuation { followTerminationWaiters.append($0) }
    }

    func emit(_ line: String) { followContinuation?.yield(line) }

    func status(unit: UnitName) async throws(APIError) -> FlotillaUnitStatus {
        FlotillaUnitStatus(unit: unit.rawValue, machineID: "m1", text: "● \(unit.rawValue)\n   Active: active (running)")
    }

    func schedule(machineID: String, afterVersion: UInt64, waitMilliseconds: Int) async throws(APIError) -> MachineSchedule {
        recordCaller("schedule")
        lastWaitMilliseconds = waitMilliseconds
        return MachineSchedule(machineID: machineID, version: afterVersion + 1, leaderTerm: 3,
                               units: [ScheduledUnit(name: "a.service", desiredState: .launched, hash: "h",
                                                     file: "[Service]\nExecStart=/bin/true\n")])
    }

    func reportStates(_ report: StateReport) async throws(APIError) { reports.append(report) }
    var leaseRenewals: [LeaseRenewalRequest] = []
    var leaseReleases: [LeaseReleaseRequest] = []
    func renewLease(_ request: LeaseRenewalRequest) async throws(APIError) -> LeaseRenewalAnswer {
        leaseRenewals.append(request)
        return LeaseRenewalAnswer(voter: "10.0.0.1", answer: "granted", epoch: request.epoch, voters: ["10.0.0.1"])
    }
    func leaseWithholds() async throws(APIError) -> LeaseWithholdsReport {
        recordCaller("leaseWithholds")
        return LeaseWithholdsReport(voter: "10.0.0.1", withholds: [.init(machineID: "m2", epoch: 3)])
    }
    func releaseLease(_ request: LeaseReleaseRequest) async throws(APIError) { leaseReleases.append(request) }

    /// When set, network callers need the token "good" (401 without one, 403 with another);
    /// every decision is recorded.
    var requireTokens = false
    var authorizations: [(caller: APICaller, access: APIAccess)] = []
    func setRequireTokens(_ value: Bool) { requireTokens = value }
    func authorize(_ caller: APICaller, for access: APIAccess) async throws(APIError) {
        authorizations.append((caller, access))
        guard requireTokens, caller.kind == .network else { return }
        guard let token = caller.token else { throw APIError(status: 401, message: "no token") }
        guard token == "good" else { throw APIError(status: 403, message: "token may not \(access)") }
    }
    func bootstrapACL() async throws(APIError) -> FlotillaACLToken {
        FlotillaACLToken(accessorID: Self.bootstrapAccessor, name: "bootstrap", policies: ["management"], secretID: Self.bootstrapSecret)
    }
    func listACLTokens() async throws(APIError) -> [FlotillaACLToken] { [FlotillaACLToken(accessorID: Self.bootstrapAccessor, name: "bootstrap", policies: ["management"])] }
    var createdTokens: [FlotillaACLTokenRequest] = []
    func createACLToken(_ request: FlotillaACLTokenRequest) async throws(APIError) -> FlotillaACLToken {
        createdTokens.append(request)
        return FlotillaACLToken(accessorID: Self.createdAccessor, name: request.name, policies: request.policies, secretID: Self.createdSecret)
    }
    func deleteACLToken(accessorID: String) async throws(APIError) {
        guard accessorID == Self.createdAccessor else { throw .notFound("no ACL token \(accessorID)") }
    }

    /// Token IDs in the daemon's form (32 and 64 hexadecimal digits), as the OpenAPI document
    /// promises clients.
    static let bootstrapAccessor = String(repeating: "a1", count: 16)
    static let bootstrapSecret = String(repeating: "51", count: 32)
    static let createdAccessor = String(repeating: "a2", count: 16)
    static let createdSecret = String(repeating: "52", count: 32)

    var keyringChanges: [FlotillaKeyringChange] = []
    func gossipKeyring() async throws(APIError) -> FlotillaGossipKeyring {
        FlotillaGossipKeyring(keys: [FlotillaGossipKey(fingerprint: "00112233aabbccdd", isPrimary: true)], isReplicated: !keyringChanges.isEmpty)
    }
    func changeGossipKeyring(_ change: FlotillaKeyringChange) async throws(APIError) { keyringChanges.append(change) }

    func metricsText() async -> String {
        "# TYPE flotilla_raft_term gauge\nflotilla_raft_term 3\n"
    }
}
