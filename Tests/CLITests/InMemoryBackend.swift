import FleetAPI
import HTTPAPI
import UnitFile

/// A test double of flotillad behind HTTPAPI's server: one registry in memory, one or two
/// machines, and a "systemd" that reaches every desired state at once (a unit is placed on the
/// first undrained machine). The real daemon is tested end to end elsewhere.
actor InMemoryBackend: APIBackend {
    static let machines = [
        FleetMachine(id: "0123456789abcdef0123456789abcdef", primaryIP: "10.0.0.1", metadata: ["region": "eu"]),
        FleetMachine(id: "fedcba9876543210fedcba9876543210", primaryIP: "10.0.0.2", metadata: [:]),
    ]

    private var units: [String: (file: UnitFile, desired: FleetUnitTargetState)] = [:]
    private var drained: Set<String> = []

    private func placement(_ name: String) -> String? {
        guard let unit = units[name], unit.desired != .inactive else { return nil }
        return Self.machines.first { !drained.contains($0.id) }?.id
    }

    private func fleetUnit(_ name: String) -> FleetUnit? {
        guard let unit = units[name] else { return nil }
        let machineID = placement(name)
        return FleetUnit(name: name, options: unit.file.fleetOptions, desiredState: unit.desired,
                         currentState: machineID == nil ? .inactive : unit.desired, machineID: machineID)
    }

    func listUnits() async throws(APIError) -> [FleetUnit] { units.keys.sorted().compactMap(fleetUnit) }
    func unit(named name: UnitName) async throws(APIError) -> FleetUnit? { fleetUnit(name.rawValue) }

    func putUnit(_ request: PutUnitRequest) async throws(APIError) -> PutUnitOutcome {
        let name = request.name.rawValue
        let existing: UnitPutRules.Existing = units[name].map { .unit(hash: $0.file.hash) } ?? .none
        switch try UnitPutRules.decide(request, existing: existing, templateOfInstanceExists: false) {
        case .create(let file, let target):
            units[name] = (file, target)
            return .created
        case .createInstanceOfTemplate:
            throw .internalError("no templates here")
        case .update(let file, let target):
            if let file { units[name]?.file = file }
            if let target { units[name]?.desired = target }
            return .modified
        }
    }

    func destroyUnit(named name: UnitName) async throws(APIError) {
        guard units.removeValue(forKey: name.rawValue) != nil else { throw .notFound("unit does not exist") }
    }

    func unitStates(machineID: String?, unitName: String?) async throws(APIError) -> [FleetUnitState] {
        units.keys.sorted().compactMap { name -> FleetUnitState? in
            guard let unit = units[name], let placed = placement(name) else { return nil }
            guard machineID == nil || machineID == placed, unitName == nil || unitName == name else { return nil }
            let isActive = unit.desired == .launched
            return FleetUnitState(name: name, hash: unit.file.hash.hex, machineID: placed, systemdLoadState: "loaded",
                                  systemdActiveState: isActive ? "active" : "inactive", systemdSubState: isActive ? "running" : "dead")
        }
    }

    func listMachines() async throws(APIError) -> [FleetMachine] { Self.machines }
    func changeMachineMetadata(_ changes: [MachineMetadataChange]) async throws(APIError) {}

    func clusterStatus() async throws(APIError) -> FlotillaClusterStatus {
        FlotillaClusterStatus(leaderMachineID: Self.machines[0].id, term: 1, commitIndex: 1, appliedIndex: 1, registryVersion: 1,
                              voters: [Self.machines[0].id], answeredBy: Self.machines[0].id)
    }

    func listMachinesDetailed() async throws(APIError) -> [FlotillaMachine] {
        Self.machines.map { machine in
            FlotillaMachine(id: machine.id, primaryIP: machine.primaryIP, metadata: machine.metadata, role: "voter", state: "alive",
                            isDrained: drained.contains(machine.id), unitCount: units.keys.filter { placement($0) == machine.id }.count)
        }
    }

    func listUnitFiles() async throws(APIError) -> [FlotillaUnitFile] { [] }

    func setDrained(machineID: String, isDrained: Bool) async throws(APIError) {
        guard Self.machines.contains(where: { $0.id == machineID }) else { throw .notFound("no machine \(machineID)") }
        if isDrained { drained.insert(machineID) } else { drained.remove(machineID) }
    }

    func events(afterIndex: UInt64, waitMilliseconds: Int) async throws(APIError) -> FlotillaEventPage {
        let events = [FlotillaEvent(index: 1, kind: .machine, subject: Self.machines[0].id),
                      FlotillaEvent(index: 2, kind: .unit, subject: "web.service")].filter { $0.index > afterIndex }
        return FlotillaEventPage(events: events, lastIndex: 2, isTruncated: false)
    }

    func journal(unit: UnitName, lines: Int, output: JournalOutput) async throws(APIError) -> FlotillaJournal {
        FlotillaJournal(unit: unit.rawValue, machineID: Self.machines[0].id, lines: (1...3).suffix(lines).map { "line \($0)" })
    }

    func followJournal(unit: UnitName, lines: Int, output: JournalOutput) async throws(APIError) -> AsyncThrowingStream<String, any Error> {
        AsyncThrowingStream { continuation in
            for number in 1...3 { continuation.yield("line \(number)") }
            continuation.finish()
        }
    }

    func status(unit: UnitName) async throws(APIError) -> FlotillaUnitStatus {
        guard units[unit.rawValue] != nil else { throw .notFound("unit \(unit) does not exist") }
        return FlotillaUnitStatus(unit: unit.rawValue, machineID: Self.machines[0].id, text: "● \(unit.rawValue)\n   Active: active (running)")
    }

    func schedule(machineID: String, afterVersion: UInt64, waitMilliseconds: Int) async throws(APIError) -> MachineSchedule {
        MachineSchedule(machineID: machineID, version: 1, leaderTerm: 1, units: [])
    }

    func reportStates(_ report: StateReport) async throws(APIError) {}
    func renewLease(_ request: LeaseRenewalRequest) async throws(APIError) -> LeaseRenewalAnswer {
        throw .notFound("the CLI never renews a lease")
    }
    func leaseWithholds() async throws(APIError) -> LeaseWithholdsReport { throw .notFound("the CLI never asks for withholds") }
    func releaseLease(_ request: LeaseReleaseRequest) async throws(APIError) { throw .notFound("the CLI never releases a lease") }
    func metricsText() async -> String { "" }

    /// The CLI talks to the unix socket (the management identity): every access is allowed;
    /// tokens are kept in memory (the daemon's rules are tested in DaemonTests and end to end).
    func authorize(_ caller: APICaller, for access: APIAccess) async throws(APIError) {}
    var tokens: [FlotillaACLToken] = []
    func bootstrapACL() async throws(APIError) -> FlotillaACLToken {
        guard tokens.isEmpty else { throw .conflict("ACLs are already bootstrapped: a management token exists") }
        return try await createACLToken(FlotillaACLTokenRequest(name: "bootstrap management token", policies: ["management"]))
    }
    func listACLTokens() async throws(APIError) -> [FlotillaACLToken] { tokens.map { FlotillaACLToken(accessorID: $0.accessorID, name: $0.name, policies: $0.policies) } }
    func createACLToken(_ request: FlotillaACLTokenRequest) async throws(APIError) -> FlotillaACLToken {
        let token = FlotillaACLToken(accessorID: "accessor\(tokens.count + 1)", name: request.name, policies: request.policies, secretID: "secret\(tokens.count + 1)")
        tokens.append(token)
        return token
    }
    func deleteACLToken(accessorID: String) async throws(APIError) {
        guard tokens.contains(where: { $0.accessorID == accessorID }) else { throw .notFound("no ACL token \(accessorID)") }
        tokens.removeAll { $0.accessorID == accessorID }
    }

    /// The ring as the keys' text, primary first; a key's "fingerprint" here is its first 16
    /// characters (the daemon's real rotation rules are tested in DaemonTests).
    var gossipKeys = ["AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="]
    func gossipKeyring() async throws(APIError) -> FlotillaGossipKeyring {
        FlotillaGossipKeyring(keys: gossipKeys.enumerated().map { FlotillaGossipKey(fingerprint: String($1.prefix(16)), isPrimary: $0 == 0) },
                              isReplicated: gossipKeys.count > 1)
    }
    func changeGossipKeyring(_ change: FlotillaKeyringChange) async throws(APIError) {
        let named = gossipKeys.first { $0 == change.key || $0.hasPrefix(change.key) }
        switch change.operation {
        case .install: if named == nil { gossipKeys.append(change.key) }
        case .use:
            guard let named else { throw .notFound("no installed key is that key") }
            gossipKeys = [named] + gossipKeys.filter { $0 != named }
        case .remove:
            guard let named else { throw .notFound("no installed key is that key") }
            guard named != gossipKeys.first else { throw .conflict("it is the primary key: use another key first") }
            gossipKeys.removeAll { $0 == named }
        }
    }
}
