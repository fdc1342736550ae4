import Registry
import UnitFile

/// One scheduling round's working state. Machines are indexed in id order, so every iteration
/// over them is deterministic; units are visited in name order.
struct Placer {
    struct Unit {
        let record: UnitRecord
        let matcher: MetadataMatcher
        let conflicts: [CompiledGlob]
        let replaces: [CompiledGlob]
        var name: UnitName { record.name }
        var options: FleetOptions { record.options }

        init(record: UnitRecord) {
            self.record = record
            matcher = MetadataMatcher(record.options.machineMetadata)
            conflicts = record.options.conflicts.map(CompiledGlob.init)
            replaces = record.options.replaces.map(CompiledGlob.init)
        }
    }

    /// A glob with its literal prefix (the text before its first metacharacter): only names with
    /// that prefix can match, so most names are ruled out by a prefix test or a binary search
    /// instead of a full match. This keeps 100,000 units with `Conflicts` globs within seconds.
    ///
    /// A class, as is `OwnedGlob`: both are immutable and scanned in the innermost loop, where
    /// copying a struct of strings out of an array costs a retain per string (measured: a third
    /// of the scheduler's time).
    final class CompiledGlob: Sendable {
        let glob: Glob
        let literalPrefix: String
        let isLiteral: Bool

        init(_ glob: Glob) {
            self.glob = glob
            let metacharacters: Set<Character> = ["*", "?", "[", "\\"]
            let prefix = glob.pattern.prefix { !metacharacters.contains($0) }
            literalPrefix = String(prefix)
            isLiteral = prefix.count == glob.pattern.count
        }

        func matches(_ name: String) -> Bool {
            isLiteral ? name == literalPrefix : name.hasPrefix(literalPrefix) && glob.matches(name)
        }
    }

    /// A unit (placed or global) carrying a glob that constrains its neighbours.
    final class OwnedGlob: Sendable {
        let owner: UnitName
        let glob: CompiledGlob
        init(owner: UnitName, glob: CompiledGlob) {
            self.owner = owner
            self.glob = glob
        }
    }

    struct Slot {
        let machine: LiveMachine
        /// Non-global units placed here.
        var placedNames: Set<UnitName> = []
        /// Global units that run here (fixed for the round).
        var globalNames: Set<UnitName> = []
        /// The names of both kinds, sorted, for prefix searches.
        var sortedNames: [String] = []
        var conflictGlobs: [OwnedGlob] = []
        var replaceGlobs: [OwnedGlob] = []
        var load: Int { placedNames.count }
    }

    /// Why a machine cannot take a unit; the first failing check, in this order.
    enum Refusal: String, CaseIterable {
        case drained, notRenewing = "lease not renewed", full, machineID = "MachineID", metadata = "MachineMetadata", peer = "MachineOf"
        case conflict = "Conflicts", replaced = "Replaces"
    }

    enum Attempt {
        case placed(Int)
        case deferred(String)
        case failed(String)
    }

    let registry: RegistryState
    var units: [UnitName: Unit] = [:]
    /// Non-global units that should be placed (target loaded or launched), in name order.
    var schedulable: [UnitName] = []
    var slots: [Slot] = []
    var slotIndexByID: [MachineID: Int] = [:]
    var placement: [UnitName: Int] = [:]
    /// Machine indexes by load, each bucket sorted: the least-loaded, lowest-id machine first.
    /// Drained and full machines are in no bucket.
    var buckets: [[Int]] = []
    var pending: [UnitName] = []
    var unscheduled: [UnitName: String] = [:]

    init(registry: RegistryState, liveMachines: [LiveMachine]) {
        self.registry = registry
        // One slot per machine id; a repeated id keeps its first entry.
        for machine in liveMachines.sorted(by: { $0.id < $1.id }) where slotIndexByID[machine.id] == nil {
            slotIndexByID[machine.id] = slots.count
            slots.append(Slot(machine: machine))
        }
        var globals: [UnitRecord] = []
        for record in registry.unitsSortedByName where record.targetState != .inactive {
            units[record.name] = Unit(record: record)
            if record.options.isGlobal { globals.append(record) } else { schedulable.append(record.name) }
        }
        for index in slots.indices {
            let candidates = globals.filter { units[$0.name]!.matcher.isSatisfied(by: slots[index].machine.metadata) }
            // Admitted in name order, so appending keeps `sortedNames` sorted.
            for record in GlobalUnits.admitted(candidates) {
                slots[index].globalNames.insert(record.name)
                slots[index].sortedNames.append(record.name.rawValue)
                // A global unit's own globs keep conflicting units off its machines.
                slots[index].conflictGlobs += units[record.name]!.conflicts.map { OwnedGlob(owner: record.name, glob: $0) }
            }
        }
    }

    // MARK: Keeping what is placed

    mutating func keepCurrentPlacements() {
        for name in schedulable {
            guard let machine = units[name]!.record.machine, let index = slotIndexByID[machine],
                  refusal(of: units[name]!, on: index, isNewPlacement: false) == nil
            else {
                pending.append(name)
                continue
            }
            // `place`, not `add`: a unit whose new file `Replaces` a neighbour placed before it
            // in name order pushes that neighbour off here too.
            pending += place(name, on: index)
        }
        releaseFollowersAwayFromTheirPeers()
        rebuildBuckets()
    }

    /// Followers whose peers moved or vanished are released, repeatedly, since releasing one may
    /// strand its own followers; each pass releases at least one unit or ends.
    mutating func releaseFollowersAwayFromTheirPeers() {
        var changed = true
        while changed {
            changed = false
            for name in schedulable where placement[name] != nil && !units[name]!.options.machineOf.isEmpty {
                let index = placement[name]!
                if case .some = peerRefusal(of: units[name]!, on: index) {
                    remove(name, from: index)
                    pending.append(name)
                    changed = true
                }
            }
        }
        pending.sort()
    }

    // MARK: Placing the rest

    mutating func placePending(roundsMax: Int) {
        var deferredReasons: [UnitName: String] = [:]
        for _ in 0..<roundsMax where !pending.isEmpty {
            var next: [UnitName] = []
            var placedCount = 0
            for name in pending {
                switch attempt(units[name]!) {
                case .placed(let index):
                    placedCount += 1
                    next += place(name, on: index)
                    deferredReasons[name] = nil
                case .deferred(let reason):
                    deferredReasons[name] = reason
                    next.append(name)
                case .failed(let reason):
                    unscheduled[name] = reason
                }
            }
            pending = Set(next).filter { placement[$0] == nil }.sorted()
            if placedCount == 0 { break }
        }
        for name in pending { unscheduled[name] = deferredReasons[name] ?? "placement rounds exhausted" }
    }

    func attempt(_ unit: Unit) -> Attempt {
        if let peerMachine = peerAttempt(unit) {
            switch peerMachine {
            case .placed(let index):
                if let refusal = refusal(of: unit, on: index, isNewPlacement: true) {
                    return .failed("the machine of its MachineOf peers, \(slots[index].machine.id), refuses it: \(refusal.rawValue)")
                }
                return .placed(index)
            case .deferred, .failed:
                return peerMachine
            }
        }
        if let wanted = unit.options.machineID {
            guard let id = try? MachineID(wanted), let index = slotIndexByID[id] else {
                return .failed("MachineID=\(wanted) is not a live machine")
            }
            if let refusal = refusal(of: unit, on: index, isNewPlacement: true) {
                return .failed("MachineID=\(wanted) refuses it: \(refusal.rawValue)")
            }
            return .placed(index)
        }
        for bucket in buckets {
            for index in bucket where refusal(of: unit, on: index, isNewPlacement: true) == nil {
                return .placed(index)
            }
        }
        return .failed(noMachineReason(unit))
    }

    /// For a unit with non-global `MachineOf` peers: the one machine they share, or why there is none.
    func peerAttempt(_ unit: Unit) -> Attempt? {
        var machineIndex: Int?
        for peer in unit.options.machineOf {
            guard let peerUnit = units[peer] else {
                let exists = registry.units[peer] != nil
                return .failed("MachineOf peer \(peer) \(exists ? "is inactive" : "does not exist")")
            }
            if peerUnit.options.isGlobal { continue }
            guard let index = placement[peer] else {
                if let reason = unscheduled[peer] { return .failed("MachineOf peer \(peer) is unscheduled: \(reason)") }
                return .deferred("MachineOf peer \(peer) is not scheduled")
            }
            if let machineIndex, machineIndex != index {
                return .failed("MachineOf peers are on different machines")
            }
            machineIndex = index
        }
        return machineIndex.map { .placed($0) }
    }

    /// Reads `slots[index]` in place: copying a `Slot` would retain every collection in it.
    func refusal(of unit: Unit, on index: Int, isNewPlacement: Bool) -> Refusal? {
        if slots[index].machine.isDrained { return .drained }
        // A machine that holds its lease but has not renewed it with this leader lately keeps
        // what it runs and gets nothing new (it may be about to lose the lease).
        if isNewPlacement, !slots[index].machine.acceptsNewUnits { return .notRenewing }
        if slots[index].load >= slots[index].machine.unitsMax { return .full }
        if let wanted = unit.options.machineID, wanted != slots[index].machine.id.rawValue { return .machineID }
        if !unit.matcher.isEmpty, !unit.matcher.isSatisfied(by: slots[index].machine.metadata) { return .metadata }
        if isNewPlacement, let refusal = peerRefusal(of: unit, on: index) { return refusal }
        if conflicts(unit, on: index) { return .conflict }
        let name = unit.name.rawValue
        if slots[index].replaceGlobs.contains(where: { $0.glob.matches(name) && $0.owner != unit.name }) {
            return .replaced
        }
        return nil
    }

    func peerRefusal(of unit: Unit, on index: Int) -> Refusal? {
        for peer in unit.options.machineOf {
            guard let peerUnit = units[peer] else { return .peer }
            if peerUnit.options.isGlobal {
                if !slots[index].globalNames.contains(peer) { return .peer }
            } else if placement[peer] != index {
                return .peer
            }
        }
        return nil
    }

    /// Both directions: the unit's globs against the machine's units, and theirs against it.
    func conflicts(_ unit: Unit, on index: Int) -> Bool {
        let name = unit.name.rawValue
        if slots[index].conflictGlobs.contains(where: { $0.glob.matches(name) && $0.owner != unit.name }) { return true }
        for compiled in unit.conflicts {
            if compiled.isLiteral {
                guard compiled.literalPrefix != name, let other = try? UnitName(compiled.literalPrefix) else { continue }
                if slots[index].placedNames.contains(other) || slots[index].globalNames.contains(other) { return true }
                continue
            }
            var position = Self.lowerBound(of: compiled.literalPrefix, in: slots[index].sortedNames)
            while position < slots[index].sortedNames.count, slots[index].sortedNames[position].hasPrefix(compiled.literalPrefix) {
                let other = slots[index].sortedNames[position]
                if other != name, compiled.glob.matches(other) { return true }
                position += 1
            }
        }
        return false
    }

    func noMachineReason(_ unit: Unit) -> String {
        guard !slots.isEmpty else { return "no live machines" }
        var counts: [Refusal: Int] = [:]
        for index in slots.indices {
            if let refusal = refusal(of: unit, on: index, isNewPlacement: true) { counts[refusal, default: 0] += 1 }
        }
        let parts = Refusal.allCases.compactMap { refusal in counts[refusal].map { "\($0) \(refusal.rawValue)" } }
        return "no machine of \(slots.count) fits (" + parts.joined(separator: ", ") + ")"
    }

    // MARK: Bookkeeping

    /// Places `name` on the machine and returns the units it pushed off (its `Replaces`, and
    /// their followers), sorted by name.
    mutating func place(_ name: UnitName, on index: Int) -> [UnitName] {
        moveInBuckets(index) { $0.add(name, to: index) }
        var evicted: [UnitName] = []
        let replaces = units[name]!.options.replaces
        guard !replaces.isEmpty else { return [] }
        let compiled = units[name]!.replaces
        var queue = slots[index].placedNames.filter { other in
            other != name && compiled.contains { $0.matches(other.rawValue) }
        }.sorted()
        while let victim = queue.popLast() {
            guard placement[victim] == index else { continue }
            moveInBuckets(index) { $0.remove(victim, from: index) }
            evicted.append(victim)
            // Followers of a unit that moved must move with it.
            queue += slots[index].placedNames.filter { units[$0]!.options.machineOf.contains(victim) }.sorted()
        }
        return evicted.sorted()
    }

    mutating func add(_ name: UnitName, to index: Int) {
        let unit = units[name]!
        placement[name] = index
        slots[index].placedNames.insert(name)
        let position = Self.lowerBound(of: name.rawValue, in: slots[index].sortedNames)
        slots[index].sortedNames.insert(name.rawValue, at: position)
        slots[index].conflictGlobs += unit.conflicts.map { OwnedGlob(owner: name, glob: $0) }
        slots[index].replaceGlobs += unit.replaces.map { OwnedGlob(owner: name, glob: $0) }
    }

    mutating func remove(_ name: UnitName, from index: Int) {
        placement[name] = nil
        slots[index].placedNames.remove(name)
        let position = Self.lowerBound(of: name.rawValue, in: slots[index].sortedNames)
        if position < slots[index].sortedNames.count, slots[index].sortedNames[position] == name.rawValue {
            slots[index].sortedNames.remove(at: position)
        }
        if !units[name]!.options.conflicts.isEmpty { slots[index].conflictGlobs.removeAll { $0.owner == name } }
        if !units[name]!.options.replaces.isEmpty { slots[index].replaceGlobs.removeAll { $0.owner == name } }
    }

    func isCandidate(_ index: Int) -> Bool {
        !slots[index].machine.isDrained && slots[index].machine.acceptsNewUnits && slots[index].load < slots[index].machine.unitsMax
    }

    mutating func rebuildBuckets() {
        buckets = []
        for index in slots.indices where isCandidate(index) { insertInBucket(index) }
    }

    /// Applies a load change to one machine, keeping `buckets` ordered.
    mutating func moveInBuckets(_ index: Int, _ change: (inout Placer) -> Void) {
        if isCandidate(index) { removeFromBucket(index) }
        change(&self)
        if isCandidate(index) { insertInBucket(index) }
    }

    mutating func insertInBucket(_ index: Int) {
        let load = slots[index].load
        while buckets.count <= load { buckets.append([]) }
        let position = Self.lowerBound(of: index, in: buckets[load])
        buckets[load].insert(index, at: position)
    }

    mutating func removeFromBucket(_ index: Int) {
        let load = slots[index].load
        guard load < buckets.count else { return }
        let position = Self.lowerBound(of: index, in: buckets[load])
        if position < buckets[load].count, buckets[load][position] == index { buckets[load].remove(at: position) }
    }

    static func lowerBound<Element: Comparable>(of value: Element, in sorted: [Element]) -> Int {
        var low = 0, high = sorted.count
        while low < high {
            let middle = (low + high) / 2
            if sorted[middle] < value { low = middle + 1 } else { high = middle }
        }
        return low
    }

    // MARK: Output

    func plan(batchCountMax: Int) -> SchedulingPlan {
        var assignments: [Assignment] = []
        var unassignments: [UnitName] = []
        var placements: [Assignment] = []
        for record in registry.unitsSortedByName where !record.options.isGlobal {
            let wanted = placement[record.name].map { slots[$0].machine.id }
            if let wanted { placements.append(Assignment(unit: record.name, machine: wanted)) }
            guard wanted != record.machine else { continue }
            if let wanted {
                assignments.append(Assignment(unit: record.name, machine: wanted))
            } else {
                unassignments.append(record.name)
            }
        }
        var commands: [RegistryCommand] = []
        for start in stride(from: 0, to: unassignments.count, by: batchCountMax) {
            commands.append(RegistryCommand(.unassign(Array(unassignments[start..<min(start + batchCountMax, unassignments.count)]))))
        }
        for start in stride(from: 0, to: assignments.count, by: batchCountMax) {
            commands.append(RegistryCommand(.assign(Array(assignments[start..<min(start + batchCountMax, assignments.count)]))))
        }
        let unscheduledUnits = unscheduled.keys.sorted().map { UnscheduledUnit(name: $0, reason: unscheduled[$0]!) }
        return SchedulingPlan(commands: commands, unscheduled: unscheduledUnits, placements: placements,
                              basedOnVersion: registry.version)
    }
}
