import Agent
import FleetAPI
import Foundation
import Logging
import Storage
import SystemdBus
import UnitFile

/// Where an agent gets its schedule, renews its lease and sends its states (the node decides
/// how; the agent does not care).
struct AgentUplink: Sendable {
    /// The machine's schedule once the registry passes `afterVersion`, or after the wait, from
    /// this peer's own registry or from a voter's (`preferredVoter` first, when given).
    var fetchSchedule: @Sendable (_ afterVersion: UInt64, _ waitMilliseconds: Int, _ preferredVoter: String?) async throws -> MachineSchedule
    /// Returns false when the leader asks for a full resync.
    var sendStates: @Sendable (StateReport) async throws -> Bool
    /// One renewal, to one voter (this peer's own ledger when the voter is this peer).
    var renewLease: @Sendable (_ voter: String, LeaseRenewalRequest) async throws -> LeaseRenewalAnswer
    /// Gives the lease up (shutdown): the leader revokes it at once.
    var releaseLease: @Sendable (LeaseReleaseRequest) async throws -> Void
}

/// The shell around `AgentReconciler` and `MachineLease` on one machine: follows the schedule,
/// renews the lease with every voter, keeps systemd's lease unit in step, observes systemd and
/// the unit directory, runs the reconciler's actions through sd-bus, reports states.
///
/// The lease (Agent documentation, Lease article): units start only while a majority of the
/// voters granted a renewal within the lease time; the leader's absence does not matter, since
/// the voters answer renewals themselves. When the lease runs out or is revoked, the agent stops
/// its units and systemd's lease unit ends, which stops them too if this process is frozen.
///
/// Re-adoption: until the first schedule arrives and the first renewal holds, the agent
/// neither starts nor stops a desired unit, so a restarted flotillad never stops the units it
/// finds; systemd's lease unit, extended by the previous process, guards them meanwhile.
actor MachineAgent {
    let machineID: String
    let holder: String
    /// Whether another live process with this machine ID wins (see IdentityGuard).
    private var identity: IdentityGuard
    /// Yields the other process's address once, when this one must not go on.
    nonisolated let identityRefusals: AsyncStream<String>
    private let identityRefusalSink: AsyncStream<String>.Continuation
    private var warnedHeldElsewhere = false
    let manager: SystemdManager
    let uplink: AgentUplink
    let unitsDirectory: String
    let systemdLease: SystemdLeaseUnit
    let timing: LeaseTiming
    let reconcileIntervalMilliseconds: Int64
    let logger: Logger
    private var reconciler = AgentReconciler()
    private var lease: MachineLease
    private var schedule: MachineSchedule?
    /// Voters to renew with: the configured ones at first, then each schedule's and each grant's.
    private var voters: [String]
    private var renewalsInFlight: Set<String> = []
    /// The voter whose answers were freshest, and the newest registry version any voter showed.
    private var preferredVoter: String?
    private var newestVersionSeen: (version: UInt64, voter: String)?
    private var needsResync = true
    private var reportedTerm: UInt64?
    private var reportInFlight = false
    /// The units of the schedule the last report was computed against (nil before the first).
    private var reportedSchedule: Set<UnitName>?
    /// The newest schedule version a reconcile carried out with all its stops done (renewals
    /// and reports carry it: the leader's acknowledgement that units not in it stopped here).
    private var actedVersion: UInt64?
    private var reportAgain = false
    private var lastSystemdState: [String: (load: String, active: String, sub: String)] = [:]
    /// Units refused as the host's own (see `foreignFragmentPath`), so each is logged once; only
    /// those still observed are kept, so it is bounded by the units scheduled here.
    private var refusedUnits: Set<String> = []
    /// The hash of each file in the unit directory by its inode, size and change time: every
    /// reconcile observes the whole directory, and reading and hashing a thousand files each time
    /// cost more than the rest of the reconcile.
    private var fileHashes: [String: (stamp: FileStamp, hash: UnitHash)] = [:]
    private var watchedNames: Set<UnitName> = []
    private let triggers: AsyncStream<Void>
    private let trigger: AsyncStream<Void>.Continuation
    /// The lease unit's wanted deadline (nil: ended) and the one last applied, worked off by one
    /// loop so that extensions and ends reach systemd in order.
    private var leaseUnitWanted: Int64?
    private var leaseUnitApplied: Int64?
    private var leaseUnitMainPID: Int32?
    private let leaseUnitTriggers: AsyncStream<Void>
    private let leaseUnitTrigger: AsyncStream<Void>.Continuation
    private var counters = AgentCounters()
    private var lastPeriodicReconcile = ContinuousClock.now
    /// The newest schedule version this machine has acted on, kept beside the unit directory so
    /// that it outlives a restart of flotillad (not a reboot, which also ends the units). A schedule
    /// older than it is ignored: a restarted voter's registry starts from its snapshot and its
    /// recovered log, and until it hears the commit index from a leader it is behind what the
    /// previous process ran. Acting on it stopped every unit placed since (seen on the test bed:
    /// `systemctl restart flotillad` and kill -9 restarted 7 of 15 units); they started again a
    /// second later, when the registry caught up.
    ///
    /// A registry that never gets there (the cluster's data was wiped and it began again from
    /// version 0 while this file stayed in /run) would leave the agent following nothing, so
    /// the floor holds only for `versionFloorGraceMilliseconds` after the lease is first held.
    private var versionFloor: UInt64
    private var versionFloorEndsAtMilliseconds: Int64?
    static let versionFloorGraceMilliseconds: Int64 = 10_000
    private var versionFloorPath: String { Self.versionFloorPath(unitsDirectory: unitsDirectory) }
    static func versionFloorPath(unitsDirectory: String) -> String { unitsDirectory + ".schedule-version" }

    struct AgentCounters: Sendable {
        var actions = 0
        var actionFailures = 0
        var reconciles = 0
        var leaseLapses = 0
        var renewalsGranted = 0
        var renewalsFailed = 0
    }

    /// Voters one agent renews with at most (Raft configurations have 3 to 7).
    static let votersMax = 16

    /// `holder`: this machine's public address, sent with every renewal (one holder per lease).
    init(machineID: String, holder: String, manager: SystemdManager, uplink: AgentUplink, unitsDirectory: String,
         systemdLease: SystemdLeaseUnit, timing: LeaseTiming, voters: [String], reconcileIntervalMilliseconds: Int64, logger: Logger) {
        self.machineID = machineID
        self.holder = holder
        identity = IdentityGuard(timing: timing)
        (identityRefusals, identityRefusalSink) = AsyncStream.makeStream(of: String.self, bufferingPolicy: .bufferingNewest(1))
        self.manager = manager
        self.uplink = uplink
        self.unitsDirectory = unitsDirectory
        self.systemdLease = systemdLease
        self.timing = timing
        self.voters = Array(voters.sorted().prefix(Self.votersMax))
        self.reconcileIntervalMilliseconds = reconcileIntervalMilliseconds
        self.logger = logger
        lease = MachineLease(timing: timing)
        let floor = Self.readVersionFloor(Self.versionFloorPath(unitsDirectory: unitsDirectory), logger: logger)
        versionFloor = floor.version
        // The previous process's epoch: a restarted daemon renews at once, before any schedule
        // has come (a restarted voter's registry first catches up with the leader), so the lease
        // unit the previous process extended never runs out in between. A stale epoch (the
        // lease was revoked meanwhile) gets no grant, only `revoked`, and the schedule's epoch
        // replaces it.
        if let epoch = floor.leaseEpoch { lease.adopt(epoch: epoch) }
        // One pending trigger is enough: a reconcile observes everything anew.
        (triggers, trigger) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        (leaseUnitTriggers, leaseUnitTrigger) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    }

    var metrics: AgentCounters { counters }
    var leasePhase: MachineLease.Phase { lease.phase }

    /// Runs until the task is cancelled.
    func run() async {
        do {
            if try systemdLease.install() { try await manager.reload() }
        } catch {
            logger.error("installing the lease unit failed; units stop when their lease would", metadata: ["error": "\(error)"])
        }
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.followSchedule() }
            group.addTask { await self.followSystemd() }
            group.addTask { await self.tickTimer() }
            group.addTask { await self.renewLoop() }
            group.addTask { await self.reconcileOnTrigger() }
            group.addTask { await self.applyLeaseUnit() }
            await group.next()
            group.cancelAll()
        }
    }

    /// Shutdown of the machine: stops every unit (ending the lease unit stops them all and
    /// returns once they stopped), then gives the lease up so the leader moves them at once.
    func release() async {
        guard let epoch = lease.epoch, lease.isHeld(nowMilliseconds: Node.nowMilliseconds()) else { return }
        await systemdLease.end()
        do {
            try await uplink.releaseLease(LeaseReleaseRequest(machineID: machineID, epoch: epoch))
            logger.notice("lease released: the leader moves this machine's units now")
        } catch {
            logger.notice("releasing the lease failed; the units move once it expires", metadata: ["error": "\(error)"])
        }
    }

    /// Gossip found a live member at `address` answering for this machine's ID.
    func noteIdentityClash(with address: String) {
        decide(identity.clash(with: address, nowMilliseconds: Node.nowMilliseconds()))
    }

    private func decide(_ decision: IdentityGuard.Decision?) {
        switch decision {
        case nil:
            break
        case .reportClash(let other):
            logger.critical("another machine uses this machine's ID; this one holds the lease and keeps running, the other is refused", metadata: [
                "machine": "\(machineID)", "other": "\(other)",
                "fix": "on the other machine: rm /etc/machine-id && systemd-machine-id-setup, then restart flotillad",
            ])
        case .refuse(let other):
            logger.critical("another live machine with this machine ID holds its lease: refusing to go on", metadata: [
                "machine": "\(machineID)", "other": "\(other)",
            ])
            identityRefusalSink.yield(other)
            identityRefusalSink.finish()
        }
    }

    // MARK: Loops

    private func followSchedule() async {
        var failures = 0
        while !Task.isCancelled {
            // Without a schedule, ask for the current one at once (or, after a restart, for one
            // at least as new as the floor, which a catching-up registry answers when it gets
            // there); afterwards long-poll.
            let after = schedule?.version ?? (versionFloor > 0 ? versionFloor - 1 : 0)
            let wait = schedule == nil && versionFloor == 0 ? 0 : 1_000
            do {
                let fresh = try await uplink.fetchSchedule(after, wait, sourceVoter())
                failures = 0
                take(fresh)
            } catch is CancellationError {
                return
            } catch {
                // The uplink already tried every voter once: back off, at most a second.
                failures += 1
                logger.debug("schedule fetch failed", metadata: ["error": "\(error)"])
                try? await Task.sleep(for: .milliseconds(min(1_000, 50 << min(failures, 5))))
            }
        }
    }

    /// The voter to read the schedule from: one that showed a newer registry than the
    /// schedule in hand (the current source may be frozen or behind), else the freshest.
    private func sourceVoter() -> String? {
        if let newest = newestVersionSeen, newest.version > (schedule?.version ?? 0) { return newest.voter }
        return preferredVoter
    }

    private func take(_ fresh: MachineSchedule) {
        // A lagging voter's older schedule would undo newer decisions.
        if let schedule, fresh.version < schedule.version { return }
        if fresh.version < versionFloor {
            if let ends = versionFloorEndsAtMilliseconds, Node.nowMilliseconds() >= ends {
                logger.warning("no voter's registry reached the schedule this machine last acted on; following the older one offered",
                               metadata: ["version": "\(fresh.version)", "floor": "\(versionFloor)"])
                versionFloor = 0
            } else {
                logger.debug("ignoring a schedule older than the one this machine last acted on",
                             metadata: ["version": "\(fresh.version)", "floor": "\(versionFloor)"])
                return
            }
        }
        if fresh.version > versionFloor { recordVersionFloor(fresh.version, leaseEpoch: fresh.leaseEpoch ?? 0) }
        if let voters = fresh.voters, !voters.isEmpty { updateVoters(voters) }
        lease.adopt(epoch: fresh.leaseEpoch ?? 0)
        if fresh.leaderTerm != reportedTerm { needsResync = true }
        if fresh != schedule {
            schedule = fresh
            trigger.yield()
        }
    }

    /// The floor file: the schedule version (8 bytes, little-endian), then the lease epoch of
    /// that schedule (8 more; files written before it have none).
    static func encodeVersionFloor(version: UInt64, leaseEpoch: UInt64) -> [UInt8] {
        [version, leaseEpoch].flatMap { value in (0..<8).map { UInt8(truncatingIfNeeded: value >> (8 * UInt64($0))) } }
    }

    /// nil for a payload of any other length than 8 or 16 bytes.
    static func decodeVersionFloor(_ bytes: [UInt8]) -> (version: UInt64, leaseEpoch: UInt64?)? {
        func number(_ bytes: ArraySlice<UInt8>) -> UInt64 {
            bytes.enumerated().reduce(0) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }
        }
        guard bytes.count == 8 || bytes.count == 16 else { return nil }
        return (number(bytes[0..<8]), bytes.count == 16 ? number(bytes[8..<16]) : nil)
    }

    private static func readVersionFloor(_ path: String, logger: Logger) -> (version: UInt64, leaseEpoch: UInt64?) {
        do {
            guard let bytes = try DurableFile.read(path, payloadBytesMax: 16), let floor = decodeVersionFloor(bytes) else {
                return (0, nil)
            }
            return floor
        } catch {
            // Unreadable: start from nothing, as after a reboot (the first schedule is taken).
            logger.warning("the last schedule version is unreadable; taking the first schedule offered", metadata: ["error": "\(error)"])
            return (0, nil)
        }
    }

    private func recordVersionFloor(_ version: UInt64, leaseEpoch: UInt64) {
        versionFloor = version
        let bytes = Self.encodeVersionFloor(version: version, leaseEpoch: leaseEpoch)
        do {
            // The first schedule can come before the first unit file made the directory.
            let parent = (versionFloorPath as NSString).deletingLastPathComponent
            if !FileManager.default.fileExists(atPath: parent) {
                try FileManager.default.createDirectory(atPath: parent, withIntermediateDirectories: true)
            }
            try DurableFile.write(bytes, to: versionFloorPath)
        } catch {
            logger.warning("recording the schedule version failed; a restart may act on an older schedule", metadata: ["error": "\(error)"])
        }
    }

    private func renewLoop() async {
        await withDiscardingTaskGroup { group in
            while !Task.isCancelled {
                if let round = lease.startRound(nowMilliseconds: Node.nowMilliseconds()) {
                    for voter in voters where renewalsInFlight.insert(voter).inserted {
                        group.addTask { await self.renew(with: voter, round: round) }
                    }
                }
                try? await Task.sleep(for: .milliseconds(timing.renewalIntervalMilliseconds))
            }
        }
    }

    private func renew(with voter: String, round: LeaseRound) async {
        defer { renewalsInFlight.remove(voter) }
        do {
            let wire = try await uplink.renewLease(voter, LeaseRenewalRequest(machineID: machineID, epoch: round.epoch, holder: holder,
                                                                                   scheduleVersion: actedVersion))
            guard let answer = LeaseAnswer(wire: wire) else { return }
            if case .heldElsewhere(let other) = answer {
                if !warnedHeldElsewhere {
                    warnedHeldElsewhere = true
                    logger.warning("a voter says another process with this machine ID holds the lease", metadata: [
                        "voter": "\(voter)", "holder": "\(other)",
                    ])
                }
                decide(identity.heldElsewhere(by: other, nowMilliseconds: Node.nowMilliseconds()))
            }
            if let version = wire.registryVersion, version > (newestVersionSeen?.version ?? 0) {
                newestVersionSeen = (version, voter)
            }
            if case .granted(_, let configuration) = answer {
                counters.renewalsGranted += 1
                preferredVoter = voter
                updateVoters(configuration)
            }
            handle(lease.received(answer, from: voter, round: round.number, nowMilliseconds: Node.nowMilliseconds()))
        } catch {
            counters.renewalsFailed += 1
            logger.trace("renewal failed", metadata: ["voter": "\(voter)", "error": "\(error)"])
        }
    }

    private func updateVoters(_ configuration: [String]) {
        let next = Array(Set(configuration).sorted().prefix(Self.votersMax))
        if !next.isEmpty, next != voters { voters = next }
    }

    private func handle(_ directives: [LeaseDirective]) {
        for directive in directives {
            switch directive {
            case .extendSystemdLease(let deadline):
                leaseUnitWanted = deadline
                leaseUnitTrigger.yield()
            case .regained:
                logger.notice("the lease is held: a majority of the voters granted it")
                decide(identity.leaseHeld(nowMilliseconds: Node.nowMilliseconds()))
                if versionFloorEndsAtMilliseconds == nil {
                    versionFloorEndsAtMilliseconds = Node.nowMilliseconds() + Self.versionFloorGraceMilliseconds
                }
                trigger.yield()
            case .lapsed:
                counters.leaseLapses += 1
                logger.warning("no majority of the voters granted the lease for \(timing.leaseMilliseconds) ms: stopping this machine's units until one does")
                // Ending the lease unit stops every bound unit in one transaction; the reconcile
                // that follows it (triggered by applyLeaseUnit) finds them stopped and has
                // nothing left to stop one by one (1,000 sequential stops took 10 s).
                leaseUnitWanted = nil
                leaseUnitTrigger.yield()
            }
        }
    }

    /// Brings the lease unit to what `leaseUnitWanted` says, one step at a time.
    private func applyLeaseUnit() async {
        for await _ in leaseUnitTriggers {
            if Task.isCancelled { return }
            while leaseUnitWanted != leaseUnitApplied {
                let wanted = leaseUnitWanted
                if let deadline = wanted {
                    do {
                        leaseUnitMainPID = try await systemdLease.extend(untilMilliseconds: deadline, knownMainPID: leaseUnitMainPID)
                    } catch {
                        leaseUnitMainPID = nil
                        logger.error("extending the lease unit failed; its units stop at the last deadline it got",
                                     metadata: ["error": "\(error)"])
                    }
                } else {
                    await systemdLease.end()
                    leaseUnitMainPID = nil
                    trigger.yield()
                }
                leaseUnitApplied = wanted
            }
        }
    }

    private func followSystemd() async {
        for await change in manager.stateChanges {
            if Task.isCancelled { return }
            _ = change
            trigger.yield()
        }
    }

    private func tickTimer() async {
        while !Task.isCancelled {
            try? await Task.sleep(for: .milliseconds(100))
            handle(lease.tick(nowMilliseconds: Node.nowMilliseconds()))
            decide(identity.tick(nowMilliseconds: Node.nowMilliseconds()))
            if ContinuousClock.now - lastPeriodicReconcile >= .milliseconds(reconcileIntervalMilliseconds) {
                trigger.yield()
            }
        }
    }

    private func reconcileOnTrigger() async {
        for await _ in triggers {
            if Task.isCancelled { return }
            await reconcile()
        }
    }

    // MARK: Reconcile

    private var gate: LeaseGate {
        switch lease.phase {
        case .unknown: return .unknown
        case .held: return lease.isHeld(nowMilliseconds: Node.nowMilliseconds()) ? .held : .lapsed
        case .lapsed: return .lapsed
        }
    }

    private func reconcile() async {
        lastPeriodicReconcile = .now
        guard let schedule else { return }
        counters.reconciles += 1
        let desired = schedule.units.compactMap(Self.desiredUnit)
        do {
            var observed = try await observe(extra: desired.map(\.name))
            // The lease may have changed while observing; a plan must pair the lease as it is
            // with the schedule of the same moment, or a lease regained at a new epoch would
            // start the units of the old epoch's schedule (seen on the test bed after a freeze).
            guard self.schedule == schedule else {
                trigger.yield()
                return
            }
            let actions = try reconciler.plan(desired: desired, observed: observed, lease: gate)
            var stopped = true
            if !actions.isEmpty {
                stopped = await perform(actions)
                observed = try await observe(extra: desired.map(\.name))
            }
            // Carried out once every stop it asked for is done: what is not in this schedule
            // no longer runs here (the leader's handoff gate waits for this version).
            if stopped, schedule.version > actedVersion ?? 0 { actedVersion = schedule.version }
            try await watch(desired.map(\.name))
            report(observed: observed, leaderTerm: schedule.leaderTerm, scheduled: Set(desired.map(\.name)))
        } catch {
            logger.error("reconcile failed", metadata: ["error": "\(error)"])
        }
    }

    static func desiredUnit(_ unit: ScheduledUnit) -> DesiredUnit? {
        guard let name = try? UnitName(unit.name), let hash = try? UnitHash(hex: unit.hash) else { return nil }
        let state: DesiredState
        switch unit.desiredState {
        case .launched: state = .launched
        case .loaded: state = .loaded
        case .inactive: return nil
        }
        return DesiredUnit(name: name, state: state, hash: hash, file: Array(unit.file.utf8))
    }

    /// The units in the unit directory (with their files' hashes) and the desired ones, as
    /// systemd sees them.
    private func observe(extra: [UnitName]) async throws -> [ObservedUnit] {
        var hashes: [UnitName: UnitHash] = [:]
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: unitsDirectory)) ?? []
        var seen: Set<String> = []
        for entry in entries where !entry.hasPrefix(".") {
            guard let name = try? UnitName(entry), name.form != .template else { continue }
            let path = unitsDirectory + "/" + entry
            guard let stamp = FileStamp(path: path) else { continue }
            seen.insert(entry)
            if let cached = fileHashes[entry], cached.stamp == stamp {
                hashes[name] = cached.hash
                continue
            }
            guard let data = FileManager.default.contents(atPath: path) else { continue }
            let hash = UnitHash(digestOf: [UInt8](data))
            fileHashes[entry] = (stamp, hash)
            hashes[name] = hash
        }
        for entry in fileHashes.keys where !seen.contains(entry) { fileHashes[entry] = nil }
        let names = Array(Set(hashes.keys).union(extra)).sorted()
        guard !names.isEmpty else { return [] }
        var statuses: [String: SystemdBus.UnitState] = [:]
        for chunk in stride(from: 0, to: names.count, by: 512) {
            for status in try await manager.listUnitsByNames(Array(names[chunk..<min(chunk + 512, names.count)])) {
                statuses[status.name] = status.state
            }
        }
        var observed: [ObservedUnit] = []
        for name in names {
            let state = statuses[name.rawValue]
            let load = state?.load.rawValue ?? "not-found"
            let active = state?.active.rawValue ?? "inactive"
            let sub = state?.sub ?? "dead"
            // A unit neither on disk nor known to systemd is not on this machine at all.
            if hashes[name] == nil && load == "not-found" { continue }
            // Known to systemd but not from a file here: whose is it? (Checked before the agent
            // ever writes or links a file of this name, since once linked ours would hide it.)
            let foreign = hashes[name] == nil ? await foreignFragmentPath(name) : nil
            lastSystemdState[name.rawValue] = (load, active, sub)
            observed.append(ObservedUnit(name: name, loadState: Agent.LoadState(systemdValue: load),
                                         activeState: Agent.ActiveState(systemdValue: active), subState: sub,
                                         fileHash: hashes[name], isBoundToLease: hashes[name] == nil || systemdLease.isBound(name),
                                         foreignFragmentPath: foreign))
        }
        refusedUnits.formIntersection(observed.lazy.filter { $0.foreignFragmentPath != nil }.map(\.name.rawValue))
        return observed
    }

    /// The unit's `FragmentPath` if it lies outside the unit directory (the host's own unit), or
    /// a description of where systemd has it from when there is no file at all (a transient or
    /// generated unit); nil when the fragment is the agent's own file (linked from the directory,
    /// before a reload has dropped a removed one). Logged once per unit.
    private func foreignFragmentPath(_ name: UnitName) async -> String? {
        let properties: UnitProperties
        do {
            properties = try await manager.unitProperties(name)
        } catch {
            // Not known for sure: leave it alone this round, unlogged; the next observes again.
            return "(not known: \(error))"
        }
        let fragment = properties.fragmentPath
        let directories = [unitsDirectory, URL(fileURLWithPath: unitsDirectory).resolvingSymlinksInPath().path].map { $0 + "/" }
        // The agent's own link (/run/systemd/system/NAME -> the unit directory), even dangling.
        let candidates = [fragment, URL(fileURLWithPath: fragment).resolvingSymlinksInPath().path,
                          (try? FileManager.default.destinationOfSymbolicLink(atPath: fragment)) ?? ""]
        if !fragment.isEmpty, candidates.contains(where: { path in directories.contains { path.hasPrefix($0) } }) { return nil }
        let foreign = fragment.isEmpty ? "(no unit file: load state \(properties.state.load.rawValue))" : fragment
        if refusedUnits.insert(name.rawValue).inserted {
            logger.warning("refusing a cluster unit that this machine's systemd already has from elsewhere; it is left alone", metadata: [
                "unit": "\(name)", "fragment_path": "\(foreign)", "units_directory": "\(unitsDirectory)",
            ])
        }
        return foreign
    }

    /// Runs `actions`; returns whether every stop among them succeeded.
    @discardableResult
    private func perform(_ actions: [UnitAction]) async -> Bool {
        // Stops, and starts, are independent of each other and each waits for its job: run each
        // group together, a bounded number at a time. Everything between keeps the reconciler's
        // order (stops, removals, writes and bindings, one reload, starts).
        let stops = actions.compactMap { action -> UnitName? in
            if case .stop(let name) = action { return name }
            return nil
        }
        let starts = actions.compactMap { action -> UnitName? in
            if case .start(let name) = action { return name }
            return nil
        }
        counters.actions += actions.count
        let stopFailures = await runJobs(stops, "stop") { try await $0.stopUnit($1) }
        guard stopFailures == 0 else {
            counters.actionFailures += stopFailures
            return false
        }
        var linked: [UnitName] = []
        for action in actions {
            do {
                switch action {
                case .stop, .start:
                    continue
                case .removeFile(let name):
                    _ = try? await manager.disableUnitFiles([name], runtime: true)
                    try manager.removeUnitFile(name)
                    systemdLease.unbind(name)
                    try? await manager.resetFailedUnit(name)
                case .writeFile(let name, let bytes):
                    try systemdLease.bind(name)
                    _ = try manager.writeUnitFile(name, contents: String(decoding: bytes, as: UTF8.self))
                    linked.append(name)
                case .bindToLease(let name):
                    try systemdLease.bind(name)
                case .reloadDaemon:
                    try await linkAll(&linked)
                    try await manager.reload()
                }
            } catch {
                counters.actionFailures += 1
                logger.error("unit action failed; the next reconcile plans again", metadata: ["action": "\(action)", "error": "\(error)"])
                return true
            }
        }
        do {
            try await linkAll(&linked)
        } catch {
            counters.actionFailures += 1
            logger.error("linking unit files failed; the next reconcile plans again", metadata: ["error": "\(error)"])
            return true
        }
        // The lease may have lapsed while the files were written: start nothing then.
        guard gate == .held || starts.isEmpty else { return true }
        counters.actionFailures += await runJobs(starts, "start") { try await $0.startUnit($1) }
        return true
    }

    /// Runs one job per unit, `jobsInFlightMax` at a time; returns how many failed.
    private func runJobs(_ units: [UnitName], _ verb: String,
                         _ job: @escaping @Sendable (SystemdManager, UnitName) async throws -> JobResult) async -> Int {
        guard !units.isEmpty else { return 0 }
        let manager = self.manager
        let logger = self.logger
        return await withTaskGroup(of: Int.self) { group -> Int in
            var failures = 0
            var running = 0
            for name in units {
                if running >= Self.jobsInFlightMax, let failed = await group.next() {
                    failures += failed
                    running -= 1
                }
                group.addTask {
                    do {
                        _ = try await job(manager, name)
                        return 0
                    } catch {
                        logger.error("\(verb) failed", metadata: ["unit": "\(name)", "error": "\(error)"])
                        return 1
                    }
                }
                running += 1
            }
            for await failed in group { failures += failed }
            return failures
        }
    }

    /// Jobs in flight at once: each holds one D-Bus call (the manager sends at most its
    /// `inflightCallsMax` at a time) and then one job wait, which costs nothing but a
    /// continuation. 32 made a thousand starts take 25 s on the test bed, each batch waiting for
    /// its slowest job; systemd runs many jobs at once.
    static let jobsInFlightMax = 256
    /// Files linked per LinkUnitFiles call: one call for many files, since systemd rescans its
    /// unit paths on every call (one call per file made 1,000 new units take seconds).
    static let linksPerCallMax = 1_024

    private func linkAll(_ names: inout [UnitName]) async throws {
        for chunk in stride(from: 0, to: names.count, by: Self.linksPerCallMax) {
            _ = try await manager.linkUnitFiles(Array(names[chunk..<min(chunk + Self.linksPerCallMax, names.count)]), runtime: true, force: true)
        }
        names.removeAll()
    }

    private func watch(_ names: [UnitName]) async throws {
        let wanted = Set(names)
        let added = wanted.subtracting(watchedNames)
        let removed = watchedNames.subtracting(wanted)
        if !removed.isEmpty { await manager.unwatch(Array(removed)) }
        if !added.isEmpty { try await manager.watch(Array(added).sorted()) }
        watchedNames = wanted
    }

    /// Reports the changes since the last report, one report in flight at a time: a reconcile
    /// that finds one in flight leaves its changes for the reconcile that follows it. A reconcile
    /// after which a unit left the schedule reports even without changes: the report carries the
    /// schedule version acted on, which the leader waits for before placing the unit elsewhere.
    private func report(observed: [ObservedUnit], leaderTerm: UInt64, scheduled: Set<UnitName>) {
        // Only a process that has held this machine's lease speaks for the machine: a second
        // machine with this ID (refused within seconds) would otherwise overwrite the leader's
        // view of the first one's units. The first report after the lease is held is a resync.
        guard identity.hasHeldLease else { return }
        guard !reportInFlight else {
            reportAgain = true
            return
        }
        do {
            let resync = needsResync
            let changes = resync ? try reconciler.resync(observed: observed) : try reconciler.report(observed: observed)
            let departed = !(reportedSchedule?.isSubset(of: scheduled) ?? true)
            reportedSchedule = scheduled
            guard resync || !changes.isEmpty || departed else { return }
            var states: [FleetUnitState] = []
            var gone: [String] = []
            for change in changes {
                switch change.change {
                case .gone:
                    gone.append(change.name.rawValue)
                case .refused:
                    // Not fleet's states but within its shape: clients see it failed here.
                    states.append(FleetUnitState(name: change.name.rawValue, hash: "", machineID: machineID,
                                                 systemdLoadState: "refused", systemdActiveState: "failed",
                                                 systemdSubState: "host-unit"))
                case .observed(_, _, _, let hash):
                    let raw = lastSystemdState[change.name.rawValue] ?? ("not-found", "inactive", "dead")
                    states.append(FleetUnitState(name: change.name.rawValue, hash: hash?.hex ?? "", machineID: machineID,
                                                 systemdLoadState: raw.load, systemdActiveState: raw.active,
                                                 systemdSubState: raw.sub))
                }
            }
            reportInFlight = true
            let report = StateReport(machineID: machineID, isResync: resync, states: states, gone: gone,
                                     scheduleVersion: actedVersion)
            Task { await self.send(report, isResync: resync, leaderTerm: leaderTerm) }
        } catch {
            needsResync = true
            logger.error("computing the state report failed", metadata: ["error": "\(error)"])
        }
    }

    private func send(_ report: StateReport, isResync: Bool, leaderTerm: UInt64) async {
        do {
            if try await uplink.sendStates(report) {
                if isResync { needsResync = false }
                reportedTerm = leaderTerm
            } else {
                needsResync = true
                reportAgain = true
            }
        } catch {
            // The changes computed for it are lost to the leader; a resync repairs that.
            needsResync = true
            reportAgain = true
            logger.debug("state report failed", metadata: ["error": "\(error)"])
        }
        reportInFlight = false
        if reportAgain {
            reportAgain = false
            trigger.yield()
        }
    }
}

/// What identifies one version of a file without reading it: the agent writes unit files by
/// rename, so a new content is a new inode, and the change time covers writes in place by hand.
struct FileStamp: Hashable {
    let inode: UInt64
    let size: Int64
    let changeSeconds: Int
    let changeNanoseconds: Int

    init?(path: String) {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        inode = UInt64(info.st_ino)
        size = Int64(info.st_size)
        changeSeconds = info.st_ctim.tv_sec
        changeNanoseconds = info.st_ctim.tv_nsec
    }
}

extension LeaseAnswer {
    /// A voter's answer as it came over the wire; nil for an answer this version does not know.
    init?(wire: LeaseRenewalAnswer) {
        switch wire.answer {
        case "granted": self = .granted(epoch: wire.epoch, voters: wire.voters)
        case "revoked": self = .revoked(currentEpoch: wire.epoch)
        case "withheld": self = .withheld(epoch: wire.epoch)
        case "notGranted": self = .notGranted(reason: wire.reason ?? "", voters: wire.voters)
        case "heldElsewhere":
            guard let holder = wire.holder else { return nil }
            self = .heldElsewhere(holder: holder)
        default: return nil
        }
    }

    func wire(voter: String, registryVersion: UInt64) -> LeaseRenewalAnswer {
        switch self {
        case .granted(let epoch, let voters):
            return LeaseRenewalAnswer(voter: voter, answer: "granted", epoch: epoch, voters: voters, registryVersion: registryVersion)
        case .revoked(let epoch):
            return LeaseRenewalAnswer(voter: voter, answer: "revoked", epoch: epoch, voters: [], registryVersion: registryVersion)
        case .withheld(let epoch):
            return LeaseRenewalAnswer(voter: voter, answer: "withheld", epoch: epoch, voters: [], registryVersion: registryVersion)
        case .notGranted(let reason, let voters):
            return LeaseRenewalAnswer(voter: voter, answer: "notGranted", epoch: 0, voters: voters, reason: reason, registryVersion: registryVersion)
        case .heldElsewhere(let holder):
            return LeaseRenewalAnswer(voter: voter, answer: "heldElsewhere", epoch: 0, voters: [], registryVersion: registryVersion,
                                      holder: holder)
        }
    }
}
