import UnitFile

/// The replicated state machine of the cluster's desired state: units, templates, target states,
/// placements, machine metadata and drains. Pure and deterministic: every replica that applies
/// the same commands at the same indexes holds equal states and produces equal snapshots.
///
/// Readers watch `version`, the index of the last applied command: a reader that saw version v
/// has seen every change up to the log entry v, and nothing after it.
public struct RegistryState: Hashable, Sendable {
    public let limits: RegistryLimits
    /// The log index of the last applied command (0: nothing applied yet).
    public internal(set) var version: UInt64 = 0
    public internal(set) var units: [UnitName: UnitRecord] = [:]
    public internal(set) var templates: [UnitName: TemplateRecord] = [:]
    public internal(set) var machines: [MachineID: MachineRecord] = [:]
    public internal(set) var sessions: [UInt64: ClientSession] = [:]
    /// Nil until the first `setGossipKeyring`: until then every machine keeps its keyring file.
    public internal(set) var gossipKeyring: GossipKeyringRecord?
    /// ACL tokens by accessor ID.
    public internal(set) var aclTokens: [String: ACLTokenRecord] = [:]
    /// The voters whose data directory is short of space (`setNoSpaceAlarm`).
    public internal(set) var noSpaceAlarms: Set<MachineID> = []
    /// At most this many raised alarms (a voter set is at most 7; the bound keeps a snapshot's
    /// count honest).
    public static let noSpaceAlarmsMax = 64

    /// The bytes of every stored unit file and template, names included: what `max_registry_bytes`
    /// bounds. Summed on each call (a few milliseconds at 100,000 units), so it cannot drift from
    /// the records.
    public var unitFileBytes: Int {
        units.values.reduce(0) { $0 + $1.file.count + $1.name.rawValue.utf8.count }
            + templates.values.reduce(0) { $0 + $1.file.count + $1.name.rawValue.utf8.count }
    }

    /// The token whose secret hashes to `secretHash`, if any.
    public func aclToken(secretHash: [UInt8]) -> ACLTokenRecord? {
        aclTokens.values.first { $0.secretHash == secretHash }
    }

    public init(limits: RegistryLimits = .standard) {
        self.limits = limits
    }

    /// Applies the command committed at log `index`. Rejections change nothing but `version`
    /// (and the client's session), so every replica rejects the same commands.
    public mutating func apply(_ command: RegistryCommand, at index: UInt64) -> RegistryResult {
        guard index > version else {
            return .rejected(.indexNotAfterVersion(index: index, version: version))
        }
        version = index
        guard let stamp = command.stamp else { return execute(command.operation) }
        if let session = sessions[stamp.clientID] {
            if stamp.sequence == session.lastSequence { return session.lastResult }
            if stamp.sequence < session.lastSequence {
                return .rejected(.staleSequence(
                    clientID: stamp.clientID, sequence: stamp.sequence, lastSequence: session.lastSequence))
            }
        }
        let result = execute(command.operation)
        remember(result, for: stamp, at: index)
        return result
    }

    /// Units sorted by name (Dictionary order is seeded per process).
    public var unitsSortedByName: [UnitRecord] { units.keys.sorted().map { units[$0]! } }
    /// The machine's lease epoch (0 for a machine the registry has no record of).
    public func leaseEpoch(of machine: MachineID) -> UInt64 { machines[machine]?.leaseEpoch ?? 0 }

    /// Machines sorted by id.
    public var machinesSortedByID: [MachineRecord] { machines.keys.sorted().map { machines[$0]! } }

    private mutating func remember(_ result: RegistryResult, for stamp: ClientStamp, at index: UInt64) {
        sessions[stamp.clientID] = ClientSession(
            clientID: stamp.clientID, lastSequence: stamp.sequence, lastIndex: index, lastResult: result)
        guard sessions.count > limits.clientSessionsMax else { return }
        // Oldest last command first, client id breaking ties: the same choice on every replica.
        let oldest = sessions.values.min { ($0.lastIndex, $0.clientID) < ($1.lastIndex, $1.clientID) }!
        sessions[oldest.clientID] = nil
    }

    private mutating func execute(_ operation: RegistryOperation) -> RegistryResult {
        do {
            switch operation {
            case .submitUnits(let submissions): return .applied(changedCount: try submit(submissions))
            case .replaceUnitFiles(let submissions): return .applied(changedCount: try replaceFiles(submissions))
            case .setTargetState(let names, let target): return .applied(changedCount: try setTarget(names, target))
            case .putUnit(let submission, let targetGiven): return .applied(changedCount: try put(submission, targetGiven: targetGiven))
            case .destroyUnits(let names): return .applied(changedCount: try destroy(names))
            case .assign(let assignments): return .applied(changedCount: try assign(assignments))
            case .unassign(let names): return .applied(changedCount: try unassign(names))
            case .setMachineMetadata(let machine, let entries):
                return .applied(changedCount: try setMetadata(machine, entries))
            case .drainMachine(let machine): return .applied(changedCount: try setDrained(machine, true))
            case .undrainMachine(let machine): return .applied(changedCount: try setDrained(machine, false))
            case .revokeLease(let machine, let epoch): return .applied(changedCount: try endLeaseEpoch(machine, epoch: epoch, unplacing: true))
            case .advanceLease(let machine, let epoch): return .applied(changedCount: try endLeaseEpoch(machine, epoch: epoch, unplacing: false))
            case .setGossipKeyring(let keys):
                if let reason = GossipKeyringRecord.validate(keys) { return .rejected(.invalidGossipKeyring(reason)) }
                let changed = gossipKeyring?.keys != keys
                gossipKeyring = GossipKeyringRecord(keys: keys)
                return .applied(changedCount: changed ? 1 : 0)
            case .createACLToken(let record, let bootstrap):
                if bootstrap, !aclTokens.isEmpty { return .rejected(.aclAlreadyBootstrapped) }
                if let reason = record.invalidReason { return .rejected(.invalidACLToken(reason)) }
                guard aclTokens[record.accessorID] == nil, aclToken(secretHash: record.secretHash) == nil else {
                    return .rejected(.invalidACLToken("an accessor ID and a secret no other token has"))
                }
                guard aclTokens.count < ACLTokenRecord.tokensMax else { return .rejected(.tooManyACLTokens(limit: ACLTokenRecord.tokensMax)) }
                aclTokens[record.accessorID] = record
                return .applied(changedCount: 1)
            case .deleteACLToken(let accessor):
                guard aclTokens.removeValue(forKey: accessor) != nil else { return .rejected(.aclTokenNotFound(accessor)) }
                return .applied(changedCount: 1)
            case .setNoSpaceAlarm(let machine, let raised):
                guard raised else { return .applied(changedCount: noSpaceAlarms.remove(machine) == nil ? 0 : 1) }
                guard noSpaceAlarms.contains(machine) || noSpaceAlarms.count < Self.noSpaceAlarmsMax else {
                    return .rejected(.tooManyMachines(limit: Self.noSpaceAlarmsMax))
                }
                return .applied(changedCount: noSpaceAlarms.insert(machine).inserted ? 1 : 0)
            }
        } catch {
            return .rejected(error)
        }
    }
}
