import Client
import FleetAPI
import Foundation
import HTTPAPI
import Registry
import SystemdBus
import UnitFile

/// The HTTP API's view of a peer: the leader answers from its registry and state table, every
/// other peer forwards to the leader (see `Node`). Validation of the request's shape is the
/// HTTP layer's; meaning (what a PUT does to an existing unit) is decided here, against the
/// registry, and every write is one or more Raft proposals.
struct DaemonBackend: APIBackend {
    let node: Node

    func leaderRegistry() async throws(APIError) -> (Voter, RegistryState)? {
        guard try await node.upstream() == nil, let voter = node.voter, let registry = node.registry else { return nil }
        return (voter, registry.current)
    }

    /// The registry to read from: this peer's own replica when the request asked for a local
    /// read and this peer is in the Raft group (an outsider holds no registry), else the
    /// leader's (nil: forward to the leader).
    func readRegistry() async throws(APIError) -> RegistryState? {
        if ReadConsistency.current == .local, await node.leadership().isMember, let registry = node.registry {
            return registry.current
        }
        guard try await node.upstream() == nil, let voter = node.voter, let registry = node.registry else { return nil }
        // A peer that believes it leads may not: cut off from the others, or elected a moment
        // ago and not yet applying what its predecessor committed. Its registry could then miss
        // acknowledged writes (Contrib/chaos found such stale reads), so it first confirms its
        // leadership with a majority and applies through the commit index (ReadIndex).
        do {
            try await voter.readBarrier()
        } catch {
            throw .unavailable("this peer could not confirm its leadership for a read (\(error)); retry")
        }
        return registry.current
    }

    func propose(_ voter: Voter, _ operation: RegistryOperation, stamp: ClientStamp? = nil) async throws(APIError) -> Int {
        if let state = node.registry?.current, let refusal = WriteQuota(node.configuration).refusal(of: operation, in: state) {
            node.metrics.withLock {
                switch refusal.reason {
                case .noSpace: $0.writesRefusedNoSpace += 1
                case .quota: $0.writesRefusedQuota += 1
                }
            }
            throw refusal.error
        }
        let result: RegistryResult
        do {
            result = try await voter.propose(RegistryCommand(operation, stamp: stamp))
        } catch {
            throw .unavailable("the change was not committed: \(error); retry")
        }
        switch result {
        case .applied(let changed): return changed
        case .rejected(let rejection): throw Self.apiError(rejection)
        }
    }

    static func apiError(_ rejection: RegistryRejection) -> APIError {
        switch rejection {
        case .unitNotFound, .templateNotFound, .aclTokenNotFound: return .notFound(rejection.description)
        // A put that found no unit and carried no options (a destroy committed since the
        // leader looked): fleet's answer to a new unit without options.
        case .unitFileMissing: return .conflict("unit does not exist and options field empty")
        case .unitExists, .machineDrained, .tooManyUnits, .tooManyMachines, .aclAlreadyBootstrapped, .tooManyACLTokens:
            return .conflict(rejection.description)
        default: return .badRequest(rejection.description)
        }
    }

    /// Retries `body` while the cluster has no leader that can commit (HTTP 503), for up to
    /// `Node.forwardRetryMilliseconds`: an election after the leader died takes a few hundred
    /// milliseconds, and a user's command should ride it out rather than fail in its middle.
    private func retryingDuringFailover<T>(_ body: () async throws(APIError) -> T) async throws(APIError) -> T {
        let deadline = ContinuousClock.now + .milliseconds(Node.forwardRetryMilliseconds)
        while true {
            do {
                return try await body()
            } catch {
                guard error.status == 503, ContinuousClock.now < deadline, !Task.isCancelled else { throw error }
                try? await Task.sleep(for: .milliseconds(100))
            }
        }
    }

    func listUnits() async throws(APIError) -> [FleetUnit] {
        try await retryingDuringFailover { () async throws(APIError) in try await listUnitsOnce() }
    }
    func unit(named name: UnitName) async throws(APIError) -> FleetUnit? {
        try await retryingDuringFailover { () async throws(APIError) in try await unitOnce(named: name) }
    }
    // A write retried after a failover may have been applied by the attempt that failed (its
    // entry committed, its answer lost with the leader). `sent` tells the retry so: it then
    // answers from the effect already in place rather than from rules about the request's shape,
    // which the write itself changed (Contrib/chaos saw an applied replace answered 409, and an
    // applied destroy would have read 404).
    // Each write also keeps one idempotency key through all of it (`WriteID`, drawn here when
    // the request brought none): every copy a forward or retry makes is applied at most once.
    func putUnit(_ request: PutUnitRequest) async throws(APIError) -> PutUnitOutcome {
        var sent = false
        let writeID = WriteID.current ?? .random()
        return try await WriteID.with(writeID) { () async throws(APIError) in
            try await retryingDuringFailover { () async throws(APIError) in try await putUnitOnce(request, mayHaveApplied: &sent) }
        }
    }
    func destroyUnit(named name: UnitName) async throws(APIError) {
        var sent = false
        let writeID = WriteID.current ?? .random()
        try await WriteID.with(writeID) { () async throws(APIError) in
            try await retryingDuringFailover { () async throws(APIError) in try await destroyUnitOnce(named: name, mayHaveApplied: &sent) }
        }
    }

    /// The registry's stamp for the write this task makes (one key is one client session whose
    /// only command is this write).
    static var currentStamp: ClientStamp? { WriteID.current.map { ClientStamp(clientID: $0.rawValue, sequence: 1) } }
    func unitStates(machineID: String?, unitName: String?) async throws(APIError) -> [FleetUnitState] {
        try await retryingDuringFailover { () async throws(APIError) in try await unitStatesOnce(machineID: machineID, unitName: unitName) }
    }
    func listMachines() async throws(APIError) -> [FleetMachine] {
        try await retryingDuringFailover { () async throws(APIError) in try await listMachinesOnce() }
    }
    func changeMachineMetadata(_ changes: [MachineMetadataChange]) async throws(APIError) {
        try await retryingDuringFailover { () async throws(APIError) in try await changeMachineMetadataOnce(changes) }
    }
    func clusterStatus() async throws(APIError) -> FlotillaClusterStatus {
        try await retryingDuringFailover { () async throws(APIError) in try await clusterStatusOnce() }
    }
    func listMachinesDetailed() async throws(APIError) -> [FlotillaMachine] {
        try await retryingDuringFailover { () async throws(APIError) in try await listMachinesDetailedOnce() }
    }
    func listUnitFiles() async throws(APIError) -> [FlotillaUnitFile] {
        try await retryingDuringFailover { () async throws(APIError) in try await listUnitFilesOnce() }
    }
    func setDrained(machineID: String, isDrained: Bool) async throws(APIError) {
        try await retryingDuringFailover { () async throws(APIError) in try await setDrainedOnce(machineID: machineID, isDrained: isDrained) }
    }
    func gossipKeyring() async throws(APIError) -> FlotillaGossipKeyring {
        try await retryingDuringFailover { () async throws(APIError) in try await gossipKeyringOnce() }
    }
    func changeGossipKeyring(_ change: FlotillaKeyringChange) async throws(APIError) {
        try await retryingDuringFailover { () async throws(APIError) in try await changeGossipKeyringOnce(change) }
    }

    // MARK: fleet v1

    private func listUnitsOnce() async throws(APIError) -> [FleetUnit] {
        guard let state = try await readRegistry() else {
            return try await node.forward { client throws(ClientError) in try await client.listUnits() }
        }
        var units = state.unitsSortedByName.map(node.fleetUnit)
        units += state.templates.keys.sorted().map { node.fleetUnit(template: state.templates[$0]!) }
        return units.sorted { $0.name < $1.name }
    }

    private func unitOnce(named name: UnitName) async throws(APIError) -> FleetUnit? {
        guard let state = try await readRegistry() else {
            return try await node.forward { client throws(ClientError) in try await client.unit(named: name.rawValue) }
        }
        if let record = state.units[name] { return node.fleetUnit(record) }
        return state.templates[name].map(node.fleetUnit(template:))
    }

    private func putUnitOnce(_ request: PutUnitRequest, mayHaveApplied: inout Bool) async throws(APIError) -> PutUnitOutcome {
        guard let (voter, state) = try await leaderRegistry() else {
            let body = FleetUnitPutRequest(name: request.name.rawValue, desiredState: request.desiredState,
                                           options: request.unitFile?.fleetOptions)
            // `forward` also retries on its own: each attempt after the first asks the leader
            // first whether an earlier one took effect.
            var sent = mayHaveApplied
            let outcome = try await node.forward { client throws(ClientError) in
                if sent, let unit = try await client.unit(named: request.name.rawValue), Self.putIsInEffect(request, on: unit) {
                    return UnitPutOutcome.modified
                }
                sent = true
                return try await client.putUnit(named: request.name.rawValue, body)
            }
            mayHaveApplied = true
            return outcome == .created ? .created : .modified
        }
        let existing: UnitPutRules.Existing = if let record = state.units[request.name] {
            .unit(hash: record.hash)
        } else if let template = state.templates[request.name] {
            .template(hash: template.hash)
        } else {
            .none
        }
        if mayHaveApplied, Self.putIsInEffect(request, in: state) { return .modified }
        let templateExists = request.name.form == .instance && (try? request.name.template).map { state.templates[$0] != nil } == true
        // The rules run here first against this registry for fleet's answers to a request's shape
        // (409 without options for a new unit, 400 for an active template); the write itself is
        // one `putUnit` command that decides again when it applies, so that it is atomic and a
        // write committed meanwhile (a destroy, another put) cannot make it wrong.
        let decision = try UnitPutRules.decide(request, existing: existing, templateOfInstanceExists: templateExists)
        let submission = UnitSubmission(name: request.name, file: request.unitFile?.serializedBytes(), hash: request.unitFile?.hash,
                                        targetState: request.desiredState?.targetState ?? .inactive)
        mayHaveApplied = true
        _ = try await propose(voter, .putUnit(submission, targetGiven: request.desiredState != nil), stamp: Self.currentStamp)
        switch decision {
        case .create, .createInstanceOfTemplate: return .created
        case .update: return .modified
        }
    }

    private func destroyUnitOnce(named name: UnitName, mayHaveApplied: inout Bool) async throws(APIError) {
        guard let (voter, state) = try await leaderRegistry() else {
            var sent = mayHaveApplied
            let existed = try await node.forward { client throws(ClientError) in
                // After an attempt that may have destroyed it, an absent unit is this destroy's.
                let wasSent = sent
                sent = true
                return try await client.destroyUnit(named: name.rawValue) || wasSent
            }
            mayHaveApplied = true
            if !existed { throw .notFound("unit \(name) does not exist") }
            return
        }
        guard state.units[name] != nil || state.templates[name] != nil else {
            if mayHaveApplied { return }
            throw .notFound("unit \(name) does not exist")
        }
        mayHaveApplied = true
        _ = try await propose(voter, .destroyUnits([name]), stamp: Self.currentStamp)
    }

    /// True when the registry already holds what `request` would leave: its file (if it has
    /// options) and its target (if it has one).
    /// `putIsInEffect(_:in:)` on the leader's answer, for a peer that forwards.
    static func putIsInEffect(_ request: PutUnitRequest, on unit: FleetUnit) -> Bool {
        if let file = request.unitFile {
            guard let held = try? UnitFile(fleetOptions: unit.options), held.hash == file.hash else { return false }
        }
        if let target = request.desiredState, request.name.form != .template { return unit.desiredState == target }
        return true
    }

    static func putIsInEffect(_ request: PutUnitRequest, in state: RegistryState) -> Bool {
        let hash = state.units[request.name]?.hash ?? state.templates[request.name]?.hash
        guard let hash else { return false }
        if let file = request.unitFile, file.hash != hash { return false }
        if let target = request.desiredState, request.name.form != .template {
            return state.units[request.name]?.targetState == target.targetState
        }
        return true
    }

    private func unitStatesOnce(machineID: String?, unitName: String?) async throws(APIError) -> [FleetUnitState] {
        guard try await leaderRegistry() != nil else {
            return try await node.forward { client throws(ClientError) in try await client.unitStates(machineID: machineID, unitName: unitName) }
        }
        return node.stateTable.states(machineID: machineID, unitName: unitName)
    }

    private func listMachinesOnce() async throws(APIError) -> [FleetMachine] {
        let state = try await readRegistry()
        if state == nil, ReadConsistency.current != .local {
            return try await node.forward { client throws(ClientError) in try await client.listMachines() }
        }
        // A local read outside the Raft group: gossip's view, with the metadata machines announce.
        return node.machines.filter { $0.status.isActive }.map {
            FleetMachine(id: $0.id.rawValue, primaryIP: $0.publicIP, metadata: node.effectiveMetadata($0, registry: state))
        }
    }

    private func changeMachineMetadataOnce(_ changes: [MachineMetadataChange]) async throws(APIError) {
        guard let (voter, state) = try await leaderRegistry() else {
            let operations = changes.map { change -> FleetMachinePatchOperation in
                switch change.operation {
                case .set(let value): return FleetMachinePatchOperation(op: "replace", path: "/\(change.machineID)/metadata/\(change.key)", value: value)
                case .remove: return FleetMachinePatchOperation(op: "remove", path: "/\(change.machineID)/metadata/\(change.key)")
                }
            }
            try await node.forward { client throws(ClientError) in try await client.patchMachines(operations) }
            return
        }
        var metadataByMachine: [String: [String: String]] = [:]
        var order: [String] = []
        for change in changes {
            if metadataByMachine[change.machineID] == nil {
                order.append(change.machineID)
                let id = try? MachineID(change.machineID)
                let view = node.machines.first { $0.id == id }
                metadataByMachine[change.machineID] = view.map { node.effectiveMetadata($0, registry: state) }
                    ?? id.flatMap { state.machines[$0]?.metadataByKey } ?? [:]
            }
            switch change.operation {
            case .set(let value): metadataByMachine[change.machineID]![change.key] = value
            case .remove: metadataByMachine[change.machineID]!.removeValue(forKey: change.key)
            }
        }
        for machine in order {
            guard let id = try? MachineID(machine) else { throw .badRequest("invalid machine ID \(machine.debugDescription)") }
            let entries = metadataByMachine[machine]!.map { MetadataEntry(key: $0.key, value: $0.value) }.sorted()
            _ = try await propose(voter, .setMachineMetadata(id, entries))
        }
    }

    // MARK: Flotilla

    private func clusterStatusOnce() async throws(APIError) -> FlotillaClusterStatus {
        let leadership = await node.leadership()
        guard leadership.isMember, let status = leadership.status else {
            return try await node.forward { client throws(ClientError) in try await client.clusterStatus() }
        }
        let leaderMachine = leadership.leaderIP.flatMap { ip in node.machines.first { $0.publicIP == ip }?.id.rawValue }
        let state = node.registry?.current
        let quota = WriteQuota(node.configuration)
        return FlotillaClusterStatus(leaderMachineID: leaderMachine, term: status.term, commitIndex: status.commitIndex,
                                     appliedIndex: status.appliedIndex, registryVersion: node.registry?.version ?? 0,
                                     voters: status.membership.voters.compactMap(node.ip(of:)).sorted(), answeredBy: node.machineID,
                                     alarms: state.map { $0.noSpaceAlarms.sorted().map { "NOSPACE \($0.rawValue)" } },
                                     units: state.map { $0.units.count + $0.templates.count }, unitsMax: quota.unitsMax,
                                     unitFileBytes: state?.unitFileBytes, unitFileBytesMax: quota.registryBytesMax)
    }

    private func listMachinesDetailedOnce() async throws(APIError) -> [FlotillaMachine] {
        guard let state = try await readRegistry() else {
            if ReadConsistency.current == .local {
                // A local read is this machine's own membership view, in the Raft group or not;
                // forwarding it would answer with the leader's view (a cut leader's, in the gossip
                // cut test, that sees everyone else dead). Outside the group there is no registry
                // behind it: unit counts 0, nothing drained, roles as gossip announces them.
                return node.machines.map { node.flotillaMachine($0, registry: nil) }
            }
            return try await node.forward { client throws(ClientError) in try await client.listMachinesDetailed() }
        }
        let membership = await node.leadership().status?.membership
        return node.machines.map { node.flotillaMachine($0, registry: state, raftMembership: membership) }
    }

    private func listUnitFilesOnce() async throws(APIError) -> [FlotillaUnitFile] {
        guard let state = try await readRegistry() else {
            return try await node.forward { client throws(ClientError) in try await client.listUnitFiles() }
        }
        var files = state.unitsSortedByName.map { record in
            FlotillaUnitFile(name: record.name.rawValue, hash: record.hash.hex, desiredState: FleetUnitTargetState(record.targetState),
                             currentState: node.currentState(of: record), machineID: record.machine?.rawValue,
                             isGlobal: record.options.isGlobal, unscheduledReason: node.unscheduledReason(record.name.rawValue))
        }
        files += state.templates.keys.sorted().map { name in
            FlotillaUnitFile(name: name.rawValue, hash: state.templates[name]!.hash.hex, desiredState: .inactive,
                             currentState: .inactive, machineID: nil, isGlobal: false, unscheduledReason: nil)
        }
        return files.sorted { $0.name < $1.name }
    }

    private func setDrainedOnce(machineID: String, isDrained: Bool) async throws(APIError) {
        guard let (voter, state) = try await leaderRegistry() else {
            try await node.forward { client throws(ClientError) in try await client.setDrained(machineID: machineID, isDrained: isDrained) }
            return
        }
        guard let id = try? MachineID(machineID) else { throw .badRequest("invalid machine ID \(machineID.debugDescription)") }
        // An ID that neither the registry nor gossip has seen is a typo or a guess: a 404, as
        // Nomad answers a drain of an unknown node, rather than a record of a machine that does
        // not exist (each record counts against machines_max, and would drain a machine that
        // joins under that ID later). A dead machine the registry remembers can still be
        // drained or undrained.
        guard state.machines[id] != nil || node.machines.contains(where: { $0.id == id }) else {
            throw .notFound("machine \(id.rawValue) is unknown: no member of the cluster has that ID")
        }
        _ = try await propose(voter, isDrained ? .drainMachine(id) : .undrainMachine(id))
    }

    private func gossipKeyringOnce() async throws(APIError) -> FlotillaGossipKeyring {
        guard let (_, state) = try await leaderRegistry() else {
            return try await node.forward { client throws(ClientError) in try await client.gossipKeyring() }
        }
        guard let keys = await node.currentGossipKeys(state) else {
            throw .conflict("gossip is not encrypted on the leader (gossip_insecure_plaintext=true): there is no keyring")
        }
        return GossipKeyringRotation.listing(keys, isReplicated: state.gossipKeyring != nil)
    }

    /// Decided on the leader, against the ring it holds, and committed as the whole new ring.
    private func changeGossipKeyringOnce(_ change: FlotillaKeyringChange) async throws(APIError) {
        guard let (voter, state) = try await leaderRegistry() else {
            try await node.forward { client throws(ClientError) in try await client.changeGossipKeyring(change) }
            return
        }
        guard let current = await node.currentGossipKeys(state) else {
            throw .conflict("gossip is not encrypted on the leader (gossip_insecure_plaintext=true): give every machine a keyring file first")
        }
        let next = try GossipKeyringRotation.apply(change, to: current)
        guard next != current || state.gossipKeyring == nil else { return }
        _ = try await propose(voter, .setGossipKeyring(next))
        node.logger.notice("gossip keyring change committed", metadata: [
            "operation": "\(change.operation.rawValue)", "keys": "\(next.count)", "caller": "\(APICaller.current.map { "\($0)" } ?? "-")",
        ])
    }

    func events(afterIndex: UInt64, waitMilliseconds: Int) async throws(APIError) -> FlotillaEventPage {
        guard try await leaderRegistry() != nil else {
            return try await node.forward { client throws(ClientError) in
                try await client.events(afterIndex: afterIndex, waitMilliseconds: waitMilliseconds)
            }
        }
        return await node.events.page(afterIndex: afterIndex, waitMilliseconds: waitMilliseconds)
    }

    // MARK: Journal and status: answered by the unit's machine

    private func holdsLocally(_ unit: UnitName) -> Bool {
        FileManager.default.fileExists(atPath: node.configuration.unitsDirectory + "/" + unit.rawValue)
    }

    /// The peer that holds `unit`, asked through the leader (which knows placements and states).
    private func holder(of unit: UnitName) async throws(APIError) -> FlotillaClient {
        guard let (_, state) = try await leaderRegistry() else {
            guard let upstream = try await node.upstream() else { throw .internalError("no upstream") }
            return upstream
        }
        var machine = state.units[unit]?.machine?.rawValue
        if machine == nil { machine = node.stateTable.states(machineID: nil, unitName: unit.rawValue).first?.machineID }
        guard let machine else { throw .notFound("unit \(unit) is not on any machine") }
        guard let view = node.machines.first(where: { $0.id.rawValue == machine }) else {
            throw .unavailable("machine \(machine) of \(unit) is not known to membership")
        }
        return node.client(ip: view.publicIP, port: view.peerPort)
    }

    func journal(unit: UnitName, lines: Int, output: JournalOutput) async throws(APIError) -> FlotillaJournal {
        if holdsLocally(unit) {
            do {
                let entries = try await UnitJournal.lastEntries(unit: unit, count: min(max(lines, 0), 10_000))
                return FlotillaJournal(unit: unit.rawValue, machineID: node.machineID, lines: entries.flatMap { JournalFormat.lines($0, output) })
            } catch {
                throw .internalError("reading the journal of \(unit) failed: \(error)")
            }
        }
        let peer = try await holder(of: unit)
        do { return try await peer.journal(unit: unit.rawValue, lines: lines, output: output) } catch { throw Node.apiError(error) }
    }

    func followJournal(unit: UnitName, lines: Int, output: JournalOutput) async throws(APIError) -> AsyncThrowingStream<String, any Error> {
        if holdsLocally(unit) {
            let entries = UnitJournal.follow(unit: unit, backlog: min(max(lines, 0), 10_000))
            return AsyncThrowingStream { continuation in
                let task = Task {
                    do {
                        for try await entry in entries {
                            for line in JournalFormat.lines(entry, output) { continuation.yield(line) }
                        }
                        continuation.finish()
                    } catch {
                        continuation.finish(throwing: error)
                    }
                }
                continuation.onTermination = { _ in task.cancel() }
            }
        }
        let peer = try await holder(of: unit)
        return peer.followJournal(unit: unit.rawValue, lines: lines, output: output)
    }

    func status(unit: UnitName) async throws(APIError) -> FlotillaUnitStatus {
        if holdsLocally(unit) {
            do {
                let properties = try await node.manager.unitProperties(unit)
                let journal = (try? await UnitJournal.lastEntries(unit: unit, count: 10)) ?? []
                var text = "● \(unit.rawValue)\n"
                text += "   Loaded: \(properties.state.load) (\(properties.fragmentPath))\n"
                text += "   Active: \(properties.state.active) (\(properties.state.sub))\n"
                if let pid = properties.mainPID, pid > 0 { text += " Main PID: \(pid)\n" }
                if let restarts = properties.nRestarts { text += " Restarts: \(restarts)\n" }
                text += "  Machine: \(node.machineID)\n"
                if !journal.isEmpty { text += "\n" + journal.flatMap { JournalFormat.lines($0, .short) }.joined(separator: "\n") + "\n" }
                return FlotillaUnitStatus(unit: unit.rawValue, machineID: node.machineID, text: text)
            } catch {
                throw .internalError("reading the status of \(unit) failed: \(error)")
            }
        }
        let peer = try await holder(of: unit)
        do { return try await peer.status(unit: unit.rawValue) } catch { throw Node.apiError(error) }
    }

    // MARK: Peer endpoints

    /// Any member of the Raft group answers from its own registry; a peer outside it forwards.
    func schedule(machineID: String, afterVersion: UInt64, waitMilliseconds: Int) async throws(APIError) -> MachineSchedule {
        guard node.voter != nil, await node.leadership().isMember else {
            return try await node.forward { client throws(ClientError) in
                try await client.schedule(machineID: machineID, afterVersion: afterVersion, waitMilliseconds: waitMilliseconds)
            }
        }
        return try await node.localSchedule(machineID: machineID, afterVersion: afterVersion, waitMilliseconds: waitMilliseconds)
    }

    func renewLease(_ request: LeaseRenewalRequest) async throws(APIError) -> LeaseRenewalAnswer {
        try await node.renewLease(request)
    }

    func leaseWithholds() async throws(APIError) -> LeaseWithholdsReport {
        node.leaseWithholdsReport()
    }

    func releaseLease(_ request: LeaseReleaseRequest) async throws(APIError) {
        guard try await leaderRegistry() != nil else {
            try await node.forward { client throws(ClientError) in try await client.releaseLease(request) }
            return
        }
        try await node.releaseLeaseLocally(request)
    }

    func reportStates(_ report: StateReport) async throws(APIError) {
        guard try await leaderRegistry() != nil else {
            try await node.forward { client throws(ClientError) in try await client.reportStates(report) }
            return
        }
        guard try node.applyStates(report) else { throw .conflict("the leader holds no states for \(report.machineID): resync") }
    }

    func metricsText() async -> String {
        await node.metricsText()
    }

    func requestRefused(status: Int) {
        node.metrics.withLock { $0.peerRequestsRefused[status, default: 0] += 1 }
    }
}
