import Registry
import UnitFile

/// A machine whose lease has not been revoked, with its metadata, drained flag, unit cap, and
/// whether it may receive new units. Units leave a machine only when its constraints no longer
/// hold or the caller leaves it out (its lease was revoked, which unplaced its units anyway).
public struct LiveMachine: Hashable, Sendable {
    public var id: MachineID
    public var metadata: [String: String]
    /// A drained machine receives no units, and the units it holds are moved away.
    public var isDrained: Bool
    /// False for a machine that keeps its units but gets no new ones: it has not renewed its
    /// lease with the leader lately, or membership does not see it alive.
    public var acceptsNewUnits: Bool
    /// The most non-global units it may hold (global units are not counted: they run on every
    /// matching machine whatever its load).
    public var unitsMax: Int

    public init(id: MachineID, metadata: [String: String] = [:], isDrained: Bool = false, unitsMax: Int = .max,
                acceptsNewUnits: Bool = true) {
        self.id = id
        self.metadata = metadata
        self.isDrained = isDrained
        self.acceptsNewUnits = acceptsNewUnits
        self.unitsMax = max(0, unitsMax)
    }

    /// The live machines among `ids`, with the metadata and drain the registry holds for them.
    public static func from(_ registry: RegistryState, liveIDs ids: [MachineID], unitsMax: Int = .max) -> [LiveMachine] {
        Set(ids).sorted().map { id in
            let record = registry.machines[id]
            return LiveMachine(id: id, metadata: record?.metadataByKey ?? [:], isDrained: record?.isDrained ?? false,
                               unitsMax: unitsMax)
        }
    }
}

public struct SchedulerConfiguration: Hashable, Sendable {
    /// Elements per assign or unassign command; at most the registry's `batchCountMax`.
    public var batchCountMax: Int
    /// Placement rounds; each round places the units whose `MachineOf` peers were placed in an
    /// earlier one, so this bounds the length of a co-location chain that can be placed at once.
    public var placementRoundsMax: Int

    public static let standard = SchedulerConfiguration(batchCountMax: 4_096, placementRoundsMax: 16)

    public init(batchCountMax: Int, placementRoundsMax: Int) {
        precondition(batchCountMax > 0, "batchCountMax must be positive, got \(batchCountMax)")
        precondition(placementRoundsMax > 0, "placementRoundsMax must be positive, got \(placementRoundsMax)")
        self.batchCountMax = batchCountMax
        self.placementRoundsMax = placementRoundsMax
    }
}

/// A unit the scheduler could not place this round, and why, for `fleetctl list-unit-files`.
public struct UnscheduledUnit: Hashable, Sendable {
    public var name: UnitName
    public var reason: String
}

/// The decisions of one scheduling round.
///
/// Ordering contract: propose `commands` in order (unassigns, then assigns); each is a complete,
/// independently valid batch against the registry version the plan was computed from. If the
/// registry rejects one (it moved on meanwhile), drop the rest and plan again from the newer
/// state: the plan is a pure function of (registry, live machines), so nothing is lost.
/// A plan computed from an older version can also be accepted: the registry checks each
/// assignment alone (unit exists, not global, machine not drained), not the constraints between
/// units, so a unit whose file changed meanwhile may land where its new `Conflicts` forbid. The
/// next round, computed from the newer state, moves it; plan after every registry change.
public struct SchedulingPlan: Hashable, Sendable {
    public var commands: [RegistryCommand]
    /// Sorted by name.
    public var unscheduled: [UnscheduledUnit]
    /// Where every non-global unit ends up once `commands` are applied, sorted by unit name.
    public var placements: [Assignment]
    /// The registry version the plan was computed from.
    public var basedOnVersion: UInt64
}
