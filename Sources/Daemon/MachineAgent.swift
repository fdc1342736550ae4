import Agent
import FleetAPI
import Foundation
import Logging
import SystemdBus
import UnitFile

/// Where an agent gets its schedule and sends its states: the local voter or, through the peer
/// API, a remote one (the daemon decides; the agent does not care).
struct AgentUplink: Sendable {
    /// The machine's schedule once the registry passes `afterVersion`, or after the wait.
    var fetchSchedule: @Sendable (_ afterVersion: UInt64, _ waitMilliseconds: Int) async throws -> MachineSchedule
    /// Returns false when the leader asks for a full resync.
    var sendStates: @Sendable (StateReport) async throws -> Bool
}

/// The shell around `AgentReconciler` on one machine: follows the schedule, observes systemd and
/// the unit directory, runs the reconciler's actions through sd-bus, reports states.
///
/// Fencing: when no leader has answered for `fenceMilliseconds`, the agent stops its units
/// (desired set becomes empty) until a leader answers again. The leader moves a lost machine's
/// units only after membership declared it dead plus `agent_ttl`, which is longer, so a machine
/// cut off the network stops its units before they start elsewhere: no unit runs twice (fleet
/// ran every unit of a cut-off machine twice, ../shared/ANCHORS.md).
///
/// Re-adoption: until the first schedule arrives the agent does nothing at all, so a restarted
/// flotillad never stops the units it finds; the reconciler leaves a unit that already runs
/// with the desired file untouched.
actor MachineAgent {
    let machineID: String
    let manager: SystemdManager
    let uplink: AgentUplink
    let unitsDirectory: String
    let fenceMilliseconds: Int64
    let reconcileIntervalMilliseconds: Int64
    let logger: Logger
    private var reconciler = AgentReconciler()
    private var schedule: MachineSchedule?
    private var lastContact = ContinuousClock.now
    private var isFenced = false
    private var needsResync = true
    private var reportedTerm: UInt64?
    private var lastSystemdState: [String: (load: String, active: String, sub: String)] = [:]
    private var watchedNames: Set<UnitName> = []
    private let triggers: AsyncStream<Void>
    private let trigger: AsyncStream<Void>.Continuation
    private var counters = AgentCounters()

    struct AgentCounters: Sendable {
        var actions = 0
        var actionFailures = 0
        var reconciles = 0
        var fences = 0
    }

    init(machineID: String, manager: SystemdManager, uplink: AgentUplink, unitsDirectory: String, fenceMilliseconds: Int64,
         reconcileIntervalMilliseconds: Int64, logger: Logger) {
        self.machineID = machineID
        self.manager = manager
        self.uplink = uplink
        self.unitsDirectory = unitsDirectory
        self.fenceMilliseconds = fenceMilliseconds
        self.reconcileIntervalMilliseconds = reconcileIntervalMilliseconds
        self.logger = logger
        // One pending trigger is enough: a reconcile observes everything anew.
        (triggers, trigger) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    }

    var metrics: AgentCounters { counters }

    /// Runs until the task is cancelled.
    func run() async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.followSchedule() }
            group.addTask { await self.followSystemd() }
            group.addTask { await self.tickTimer() }
            group.addTask { await self.reconcileOnTrigger() }
            await group.next()
            group.cancelAll()
        }
    }

    // MARK: Loops

    private func followSchedule() async {
        while !Task.isCancelled {
            let after = schedule?.version ?? 0
            // Without a schedule, ask for the current one at once; afterwards long-poll. The
            // wait is short so that an answer (and so proof of a live leader) arrives every
            // second even when nothing changes: fencing counts from the last answer.
            let wait = schedule == nil ? 0 : 1_000
            do {
                let fresh = try await uplink.fetchSchedule(after, wait)
                lastContact = .now
                if isFenced {
                    isFenced = false
                    logger.notice("a leader answers again: fence lifted")
                }
                if fresh.leaderTerm != reportedTerm { needsResync = true }
                if fresh != schedule {
                    schedule = fresh
                    trigger.yield()
                }
            } catch is CancellationError {
                return
            } catch {
                logger.debug("schedule fetch failed", metadata: ["error": "\(error)"])
                try? await Task.sleep(for: .milliseconds(100))
            }
            checkFence()
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
            checkFence()
            if ContinuousClock.now - lastPeriodicReconcile >= .milliseconds(reconcileIntervalMilliseconds) {
                trigger.yield()
            }
        }
    }
    private var lastPeriodicReconcile = ContinuousClock.now

    private func reconcileOnTrigger() async {
        for await _ in triggers {
            if Task.isCancelled { return }
            await reconcile()
        }
    }

    private func checkFence() {
        guard fenceMilliseconds > 0, !isFenced, schedule != nil else { return }
        if ContinuousClock.now - lastContact > .milliseconds(fenceMilliseconds) {
            isFenced = true
            counters.fences += 1
            logger.warning("no leader has answered for \(fenceMilliseconds) ms: stopping this machine's units until one does")
            trigger.yield()
        }
    }

    // MARK: Reconcile

    private func reconcile() async {
        lastPeriodicReconcile = .now
        guard let schedule else { return }
        counters.reconciles += 1
        let desired = isFenced ? [] : schedule.units.compactMap(Self.desiredUnit)
        do {
            var observed = try await observe(extra: desired.map(\.name))
            let actions = try reconciler.plan(desired: desired, observed: observed)
            if !actions.isEmpty {
                await perform(actions)
                observed = try await observe(extra: desired.map(\.name))
            }
            try await watch(desired.map(\.name))
            await report(observed: observed, leaderTerm: schedule.leaderTerm)
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
        for entry in entries where !entry.hasPrefix(".") {
            guard let name = try? UnitName(entry), name.form != .template,
                  let data = FileManager.default.contents(atPath: unitsDirectory + "/" + entry) else { continue }
            hashes[name] = UnitHash(digestOf: [UInt8](data))
        }
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
            lastSystemdState[name.rawValue] = (load, active, sub)
            observed.append(ObservedUnit(name: name, loadState: Agent.LoadState(systemdValue: load),
                                         activeState: Agent.ActiveState(systemdValue: active), subState: sub,
                                         fileHash: hashes[name]))
        }
        return observed
    }

    private func perform(_ actions: [UnitAction]) async {
        // Starts are independent of each other and each waits for its job: run them together,
        // a bounded number at a time. Everything else keeps the reconciler's order.
        var starts: [UnitName] = []
        for action in actions {
            counters.actions += 1
            do {
                switch action {
                case .stop(let name):
                    _ = try await manager.stopUnit(name)
                case .removeFile(let name):
                    _ = try? await manager.disableUnitFiles([name], runtime: true)
                    try manager.removeUnitFile(name)
                    try? await manager.resetFailedUnit(name)
                case .writeFile(let name, let bytes):
                    _ = try manager.writeUnitFile(name, contents: String(decoding: bytes, as: UTF8.self))
                    _ = try await manager.linkUnitFiles([name], runtime: true, force: true)
                case .bindToLease:
                    break
                case .reloadDaemon:
                    try await manager.reload()
                case .start(let name):
                    starts.append(name)
                }
            } catch {
                counters.actionFailures += 1
                logger.error("unit action failed; the next reconcile plans again", metadata: ["action": "\(action)", "error": "\(error)"])
                return
            }
        }
        let manager = self.manager
        let logger = self.logger
        let failures = await withTaskGroup(of: Int.self) { group -> Int in
            var failures = 0
            var running = 0
            for name in starts {
                if running >= 32, let failed = await group.next() {
                    failures += failed
                    running -= 1
                }
                group.addTask {
                    do {
                        _ = try await manager.startUnit(name)
                        return 0
                    } catch {
                        logger.error("start failed", metadata: ["unit": "\(name)", "error": "\(error)"])
                        return 1
                    }
                }
                running += 1
            }
            for await failed in group { failures += failed }
            return failures
        }
        counters.actionFailures += failures
    }

    private func watch(_ names: [UnitName]) async throws {
        let wanted = Set(names)
        let added = wanted.subtracting(watchedNames)
        let removed = watchedNames.subtracting(wanted)
        if !removed.isEmpty { await manager.unwatch(Array(removed)) }
        if !added.isEmpty { try await manager.watch(Array(added).sorted()) }
        watchedNames = wanted
    }

    private func report(observed: [ObservedUnit], leaderTerm: UInt64) async {
        do {
            let resync = needsResync
            let changes = resync ? try reconciler.resync(observed: observed) : try reconciler.report(observed: observed)
            guard resync || !changes.isEmpty else { return }
            var states: [FleetUnitState] = []
            var gone: [String] = []
            for change in changes {
                switch change.change {
                case .gone:
                    gone.append(change.name.rawValue)
                case .observed(_, _, _, let hash):
                    let raw = lastSystemdState[change.name.rawValue] ?? ("not-found", "inactive", "dead")
                    states.append(FleetUnitState(name: change.name.rawValue, hash: hash?.hex ?? "", machineID: machineID,
                                                 systemdLoadState: raw.load, systemdActiveState: raw.active,
                                                 systemdSubState: raw.sub))
                }
            }
            let accepted = try await uplink.sendStates(StateReport(machineID: machineID, isResync: resync, states: states, gone: gone))
            if accepted {
                needsResync = false
                reportedTerm = leaderTerm
            } else {
                needsResync = true
                trigger.yield()
            }
        } catch {
            // The changes computed above are lost to the leader; a resync repairs that.
            needsResync = true
            logger.debug("state report failed", metadata: ["error": "\(error)"])
        }
    }
}
