import UnitFile

/// The per-machine reconciler (fleet's agent/reconcile.go): compares the units this machine
/// should hold with what systemd and the unit directory show, and returns the actions that close
/// the gap, in a safe order. Pure: the shell observes, runs the actions, and observes again.
///
/// Decisions per unit:
/// - not desired but on disk: stop it if up, remove its file;
/// - desired with another file on disk (a changed hash): stop it if up, write the new file,
///   reload, start it again if launched, so a unit never runs an old file after a replace;
/// - desired, file missing: write it, start if launched (reload only when the unit must end
///   up loaded but not started: systemd reads a new unit's file on its first start);
/// - desired, file matches: reload if it should be loaded and systemd has not read it yet (an
///   agent that died between write and reload), start if launched and inactive, stop if loaded
///   and up; a unit systemd
///   refused (`error`) or that is masked is neither reloaded nor started again.
///
/// Re-adoption: after an agent restart nothing is remembered, and a unit whose file matches and
/// which is running as desired gets no action at all: the agent never stops what already runs
/// and matches. A `failed` launched unit is not restarted here: systemd's `Restart=` decides
/// (fleet did the same), which avoids a restart loop driven by every reconcile tick.
///
/// The host's own units: a desired unit that the machine's systemd already knows from outside the
/// agent's directory (`ObservedUnit.foreignFragmentPath`) gets no action at all, neither a stop
/// nor a write nor a start, and is reported as refused: a cluster unit named `ssh.service` or
/// `docker.service` must not replace or stop the machine's own.
///
/// The lease (`LeaseGate`): units start only while the machine holds its lease. Before the
/// first grant after a restart nothing starts and nothing desired is stopped (systemd's lease
/// unit still guards what runs); after a lapse every launched unit is planned as loaded, so it
/// stops and keeps its file, and starting it again once the lease is back needs no file write
/// and no reload. Every desired unit is bound to systemd's lease unit (a drop-in the shell
/// writes with the file, or alone for a unit whose file is there without it).
public struct AgentReconciler: Sendable {
    /// The most units (desired or observed) one plan takes, to bound its work and its output.
    public let unitsMax: Int
    /// The states last reported, for reporting changes only.
    public private(set) var reported: [UnitName: UnitStateReport.Change] = [:]

    public init(unitsMax: Int = 10_000) {
        precondition(unitsMax > 0, "unitsMax must be positive, got \(unitsMax)")
        self.unitsMax = unitsMax
    }

    public func plan(desired desiredUnits: [DesiredUnit], observed: [ObservedUnit], lease: LeaseGate = .held) throws(AgentError) -> [UnitAction] {
        var desired = desiredUnits
        if lease == .lapsed {
            for index in desired.indices where desired[index].state == .launched { desired[index].state = .loaded }
        }
        let mayStart = lease == .held
        let desiredByName = try index(desired, name: \.name)
        let observedByName = try index(observed, name: \.name)
        for unit in desired {
            guard unit.name.form != .template else { throw .notAUnit(unit.name.rawValue) }
            guard UnitHash(digestOf: unit.file) == unit.hash else { throw .desiredHashMismatch(unit.name.rawValue) }
        }
        var stops: [UnitName] = [], removals: [UnitName] = [], writes: [UnitAction] = [], starts: [UnitName] = []
        var bindings: [UnitName] = []
        var needsReload = false
        let names = Set(desiredByName.keys).union(observedByName.keys).sorted()
        for name in names {
            let want = desiredByName[name]
            let have = observedByName[name]
            let isUp = have?.activeState.isUp ?? false
            if have?.foreignFragmentPath != nil { continue }
            guard let want else {
                guard let have else { continue }
                if isUp { stops.append(name) }
                if have.fileHash != nil {
                    removals.append(name)
                    needsReload = true
                }
                continue
            }
            if have?.fileHash != want.hash {
                if isUp { stops.append(name) }
                writes.append(.writeFile(name, want.file))
                // systemd must re-read a unit it has loaded; one it has never found it reads on
                // the start that follows (it retries not-found units when its unit directories
                // change), so a new unit costs no daemon-reload, which takes 100 ms or more and
                // grows with the number of units (measured: Contrib/bench/RESULTS.md, Cluster).
                if let loadState = have?.loadState, loadState != .notFound { needsReload = true }
                if want.state == .loaded { needsReload = true }
                if want.state == .launched && mayStart { starts.append(name) }
                continue
            }
            let loadState = have?.loadState ?? .notFound
            if have?.isBoundToLease == false {
                bindings.append(name)
                // A loaded unit learns its new dependency on the next reload only.
                if loadState != .notFound { needsReload = true }
            }
            // A file systemd has never read needs a reload; one it read and refused (`error`) or
            // that an operator masked does not: reloading or starting it on every tick would
            // only repeat the failure, which the state report already shows.
            if loadState == .notFound && want.state == .loaded { needsReload = true }
            let canStart = loadState == .loaded || loadState == .notFound
            switch want.state {
            case .launched where mayStart && canStart && (have?.activeState ?? .inactive) == .inactive:
                starts.append(name)
            case .loaded where isUp:
                stops.append(name)
            case .launched, .loaded:
                break
            }
        }
        return stops.map(UnitAction.stop) + removals.map(UnitAction.removeFile) + writes + bindings.map(UnitAction.bindToLease)
            + (needsReload ? [.reloadDaemon] : []) + starts.map(UnitAction.start)
    }

    /// The units whose observed state differs from the last report (and the units that vanished),
    /// sorted by name; remembers them as reported.
    public mutating func report(observed: [ObservedUnit]) throws(AgentError) -> [UnitStateReport] {
        let observedByName = try index(observed, name: \.name)
        var reports: [UnitStateReport] = []
        for name in Set(reported.keys).union(observedByName.keys).sorted() {
            let change: UnitStateReport.Change = observedByName[name].map(Self.change) ?? .gone
            guard reported[name] != change else { continue }
            reports.append(UnitStateReport(name: name, change: change))
            reported[name] = change == .gone ? nil : change
        }
        return reports
    }

    /// Every observed unit, sorted by name, for a leader that has just taken over: the leader
    /// keeps unit states in memory, not in the log, so a new one knows nothing and must hear the
    /// whole picture once; `report` sends changes only from then on. Units that vanished before
    /// the resync are simply absent from it, which is all a leader without memory needs.
    public mutating func resync(observed: [ObservedUnit]) throws(AgentError) -> [UnitStateReport] {
        let observedByName = try index(observed, name: \.name)
        reported = [:]
        return observedByName.keys.sorted().map { name in
            let change = Self.change(observedByName[name]!)
            reported[name] = change
            return UnitStateReport(name: name, change: change)
        }
    }

    static func change(_ unit: ObservedUnit) -> UnitStateReport.Change {
        if let path = unit.foreignFragmentPath { return .refused(foreignFragmentPath: path) }
        return .observed(loadState: unit.loadState, activeState: unit.activeState, subState: unit.subState, fileHash: unit.fileHash)
    }

    private func index<Element>(_ elements: [Element], name: (Element) -> UnitName) throws(AgentError) -> [UnitName: Element] {
        guard elements.count <= unitsMax else { throw .tooManyUnits(count: elements.count, limit: unitsMax) }
        var byName: [UnitName: Element] = [:]
        for element in elements {
            guard byName.updateValue(element, forKey: name(element)) == nil else {
                throw .duplicateUnit(name(element).rawValue)
            }
        }
        return byName
    }
}
