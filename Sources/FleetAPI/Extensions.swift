// Flotilla's additions to fleet's API, served under /flotilla/v1 so they never collide with a
// path fleet might have used. The public ones are for users and orchestrators (watch, journal,
// status, drain); the peer ones (schedule, state reports) are how agents follow the voters.

/// A machine as Flotilla sees it: fleet's entity plus what fleet never showed.
public struct FlotillaMachine: Codable, Hashable, Sendable {
    public var id: String
    public var primaryIP: String
    public var metadata: [String: String]
    /// "voter", "learner" (being promoted to voter) or "agent".
    public var role: String
    /// Membership's view: "alive", "suspect", "dead" or "left".
    public var state: String
    public var isDrained: Bool
    /// Units assigned to the machine (global units not counted).
    public var unitCount: Int
    /// The machine's raised alarms ("NOSPACE"); absent when none, or from an older peer.
    public var alarms: [String]?

    public init(id: String, primaryIP: String, metadata: [String: String], role: String, state: String,
                isDrained: Bool, unitCount: Int, alarms: [String]? = nil) {
        self.id = id
        self.primaryIP = primaryIP
        self.metadata = metadata
        self.role = role
        self.state = state
        self.isDrained = isDrained
        self.unitCount = unitCount
        self.alarms = alarms
    }
}

/// A unit's scheduling status beyond fleet's entity: why it is not placed, if it is not.
public struct FlotillaUnitFile: Codable, Hashable, Sendable {
    public var name: String
    public var hash: String
    public var desiredState: FleetUnitTargetState
    public var currentState: FleetUnitTargetState?
    public var machineID: String?
    public var isGlobal: Bool
    /// Set while the unit should be placed but cannot be, with the scheduler's reason.
    public var unscheduledReason: String?

    public init(name: String, hash: String, desiredState: FleetUnitTargetState, currentState: FleetUnitTargetState?,
                machineID: String?, isGlobal: Bool, unscheduledReason: String?) {
        self.name = name
        self.hash = hash
        self.desiredState = desiredState
        self.currentState = currentState
        self.machineID = machineID
        self.isGlobal = isGlobal
        self.unscheduledReason = unscheduledReason
    }
}

/// `GET /flotilla/v1/cluster`: who leads, at which term and index.
public struct FlotillaClusterStatus: Codable, Hashable, Sendable {
    public var leaderMachineID: String?
    public var term: UInt64
    public var commitIndex: UInt64
    public var appliedIndex: UInt64
    /// The registry's version: the index of the last applied registry command.
    public var registryVersion: UInt64
    public var voters: [String]
    /// The machine that answered.
    public var answeredBy: String
    /// Raised alarms, one line each (`NOSPACE <machine ID>`); empty when none, absent from an
    /// older peer or when the answering peer holds no replica.
    public var alarms: [String]?
    /// The answering voter's registry against its quotas (absent from an older peer).
    public var units: Int?
    public var unitsMax: Int?
    public var unitFileBytes: Int?
    public var unitFileBytesMax: Int?

    public init(leaderMachineID: String?, term: UInt64, commitIndex: UInt64, appliedIndex: UInt64,
                registryVersion: UInt64, voters: [String], answeredBy: String, alarms: [String]? = nil,
                units: Int? = nil, unitsMax: Int? = nil, unitFileBytes: Int? = nil, unitFileBytesMax: Int? = nil) {
        self.leaderMachineID = leaderMachineID
        self.term = term
        self.commitIndex = commitIndex
        self.appliedIndex = appliedIndex
        self.registryVersion = registryVersion
        self.voters = voters
        self.answeredBy = answeredBy
        self.alarms = alarms
        self.units = units
        self.unitsMax = unitsMax
        self.unitFileBytes = unitFileBytes
        self.unitFileBytesMax = unitFileBytesMax
    }
}

/// One change for `GET /flotilla/v1/watch?afterIndex=N`: orchestrators follow the cluster with
/// it instead of polling the list endpoints.
public struct FlotillaEvent: Codable, Hashable, Sendable {
    public enum Kind: String, Codable, Hashable, Sendable {
        /// A unit's record changed (submitted, replaced, target state, placement) or was destroyed.
        case unit
        /// A unit's observed state on a machine changed.
        case state
        /// A machine joined, failed, left, or its metadata or drain changed.
        case machine
    }
    /// A monotonically increasing position in this peer's event sequence.
    public var index: UInt64
    public var kind: Kind
    /// The unit name or machine ID the event is about.
    public var subject: String
    /// The new value, when the subject still exists.
    public var unit: FleetUnit?
    public var state: FleetUnitState?
    public var machine: FlotillaMachine?

    public init(index: UInt64, kind: Kind, subject: String, unit: FleetUnit? = nil, state: FleetUnitState? = nil,
                machine: FlotillaMachine? = nil) {
        self.index = index
        self.kind = kind
        self.subject = subject
        self.unit = unit
        self.state = state
        self.machine = machine
    }
}

public struct FlotillaEventPage: Codable, Hashable, Sendable {
    public var events: [FlotillaEvent]
    /// Pass it back as `afterIndex` to continue.
    public var lastIndex: UInt64
    /// True when events after the requested index were dropped from the bounded history: the
    /// watcher must re-list, then watch from `lastIndex`.
    public var isTruncated: Bool

    public init(events: [FlotillaEvent], lastIndex: UInt64, isTruncated: Bool) {
        self.events = events
        self.lastIndex = lastIndex
        self.isTruncated = isTruncated
    }
}

/// `GET /flotilla/v1/units/<name>/journal?lines=N`: read on the unit's machine by its agent.
public struct FlotillaJournal: Codable, Hashable, Sendable {
    public var unit: String
    public var machineID: String
    public var lines: [String]

    public init(unit: String, machineID: String, lines: [String]) {
        self.unit = unit
        self.machineID = machineID
        self.lines = lines
    }
}

/// journalctl's output modes that `GET /flotilla/v1/units/<name>/journal?output=` serves
/// (fleetctl passed `--output` to journalctl over SSH).
public enum JournalOutput: String, Codable, Hashable, Sendable, CaseIterable {
    /// `Nov 25 16:34:25 m1 sh[389]: message`
    case short
    /// The same with an ISO 8601 timestamp.
    case shortISO = "short-iso"
    /// The message alone.
    case cat
    /// One JSON object per entry, every field.
    case json
    /// Every field, `KEY=value`, one per line, entries separated by a timestamp line.
    case verbose
}

/// `GET /flotilla/v1/units/<name>/status`: `systemctl status`-like text from the unit's machine.
public struct FlotillaUnitStatus: Codable, Hashable, Sendable {
    public var unit: String
    public var machineID: String
    public var text: String

    public init(unit: String, machineID: String, text: String) {
        self.unit = unit
        self.machineID = machineID
        self.text = text
    }
}

// MARK: - Peer endpoints (agents and voters)

/// One unit an agent must hold, as the voters computed it for its machine.
public struct ScheduledUnit: Codable, Hashable, Sendable {
    public var name: String
    public var desiredState: FleetUnitTargetState
    public var hash: String
    /// The canonical unit file text.
    public var file: String

    public init(name: String, desiredState: FleetUnitTargetState, hash: String, file: String) {
        self.name = name
        self.desiredState = desiredState
        self.hash = hash
        self.file = file
    }
}

/// `GET /flotilla/v1/peer/schedule/<machineID>?afterVersion=N&waitMilliseconds=M`: the units of
/// one machine, answered when the registry passes `afterVersion` or the wait ends.
public struct MachineSchedule: Codable, Hashable, Sendable {
    public var machineID: String
    /// The registry version this schedule was computed from.
    public var version: UInt64
    /// The Raft term of the leader that answered; an agent that sees it change resyncs its states.
    public var leaderTerm: UInt64
    public var units: [ScheduledUnit]
    /// The public IPs of the current Raft voters: where the agent sends its lease renewals and
    /// turns for its schedule (voters change when a dead one is replaced).
    public var voters: [String]?
    /// The machine's lease epoch in the registry this schedule was computed from: the agent
    /// renews its lease at this epoch, and a newer one means its lease was revoked.
    public var leaseEpoch: UInt64?
    /// The cluster's gossip keyring from the replicated log, base64 keys, the primary first; nil
    /// until `flotillactl keyring install` first changed it (each machine keeps its file until
    /// then). Sent only over the peer port, which speaks mutual TLS.
    public var gossipKeys: [String]?

    public init(machineID: String, version: UInt64, leaderTerm: UInt64, units: [ScheduledUnit], voters: [String]? = nil,
                leaseEpoch: UInt64? = nil, gossipKeys: [String]? = nil) {
        self.machineID = machineID
        self.version = version
        self.leaderTerm = leaderTerm
        self.units = units
        self.voters = voters
        self.leaseEpoch = leaseEpoch
        self.gossipKeys = gossipKeys
    }
}

/// `GET /flotilla/v1/keyring`: the cluster's gossip keys, by fingerprint (never the keys), the
/// primary first.
public struct FlotillaGossipKeyring: Codable, Hashable, Sendable {
    public var keys: [FlotillaGossipKey]
    /// False while the ring is each machine's keyring file (no `install` yet): then `keys` is
    /// the answering leader's own ring.
    public var isReplicated: Bool

    public init(keys: [FlotillaGossipKey], isReplicated: Bool) {
        self.keys = keys
        self.isReplicated = isReplicated
    }
}

public struct FlotillaGossipKey: Codable, Hashable, Sendable {
    /// The first 8 bytes of the key's SHA-256, hex: names the key without revealing it.
    public var fingerprint: String
    public var isPrimary: Bool

    public init(fingerprint: String, isPrimary: Bool) {
        self.fingerprint = fingerprint
        self.isPrimary = isPrimary
    }
}

/// `POST /flotilla/v1/keyring`: one step of a key rotation, as `nomad operator gossip keyring`:
/// `install` adds a key (base64) to every machine's ring, `use` makes an installed key the one
/// that encrypts, `remove` takes a key that no longer encrypts off. `key` is the base64 key, or
/// for `use` and `remove` its fingerprint.
public struct FlotillaKeyringChange: Codable, Hashable, Sendable {
    public enum Operation: String, Codable, Hashable, Sendable, CaseIterable {
        case install, use, remove
    }
    public var operation: Operation
    public var key: String

    public init(operation: Operation, key: String) {
        self.operation = operation
        self.key = key
    }
}

/// `POST /flotilla/v1/peer/lease/<machineID>`: one renewal of the machine's lease, sent to every
/// voter; each answers from its own lease ledger, never forwarding (the point is to need no leader).
/// `holder` is the renewing process's public address: a voter grants one holder at a time
/// (`LeaseLedger.renew`), so two machines that share a machine ID cannot both hold its lease.
public struct LeaseRenewalRequest: Codable, Hashable, Sendable {
    public var machineID: String
    public var epoch: UInt64
    public var holder: String?
    /// The registry version of the newest schedule the agent has carried out (its stops done),
    /// nil before the first: every voter's handoff gate takes it as the machine's
    /// acknowledgement (the leader places a unit that left the machine elsewhere only after it).
    public var scheduleVersion: UInt64?

    public init(machineID: String, epoch: UInt64, holder: String? = nil, scheduleVersion: UInt64? = nil) {
        self.machineID = machineID
        self.epoch = epoch
        self.holder = holder
        self.scheduleVersion = scheduleVersion
    }
}

/// A voter's answer to a renewal: `answer` is `granted`, `revoked`, `withheld`, `notGranted` or
/// `heldElsewhere` (`holder` then names the address that holds the lease);
/// `epoch` is the granted or withheld epoch, or the registry's newer one for `revoked`;
/// `voters` the answering voter's configuration (public IPs, sorted); `registryVersion` the
/// version of the voter's applied registry, so that an agent whose schedule source fell behind
/// or went silent learns where a newer schedule is.
public struct LeaseRenewalAnswer: Codable, Hashable, Sendable {
    public var voter: String
    public var answer: String
    public var epoch: UInt64
    public var voters: [String]
    public var reason: String?
    public var registryVersion: UInt64?
    public var holder: String?

    public init(voter: String, answer: String, epoch: UInt64, voters: [String], reason: String? = nil, registryVersion: UInt64? = nil,
                holder: String? = nil) {
        self.voter = voter
        self.answer = answer
        self.epoch = epoch
        self.voters = voters
        self.reason = reason
        self.registryVersion = registryVersion
        self.holder = holder
    }
}

/// `GET /flotilla/v1/peer/lease-withholds`: the machines whose lease epoch this voter withheld
/// for good (durably), for the leader's revocation rule.
public struct LeaseWithholdsReport: Codable, Hashable, Sendable {
    public struct Withhold: Codable, Hashable, Sendable {
        public var machineID: String
        public var epoch: UInt64

        public init(machineID: String, epoch: UInt64) {
            self.machineID = machineID
            self.epoch = epoch
        }
    }

    public var voter: String
    public var withholds: [Withhold]
    /// Whether the answering voter's data directory is short of space (its NOSPACE alarm, which
    /// the leader replicates for the machine at the address it asked). Absent from an older peer.
    public var noSpace: Bool?

    public init(voter: String, withholds: [Withhold], noSpace: Bool? = nil) {
        self.voter = voter
        self.withholds = withholds
        self.noSpace = noSpace
    }
}

/// `POST /flotilla/v1/peer/lease/<machineID>/release`: a machine that is shutting down gives up
/// its lease at `epoch` once it has stopped its units, so the leader moves them at once instead
/// of after the expiry time.
public struct LeaseReleaseRequest: Codable, Hashable, Sendable {
    public var machineID: String
    public var epoch: UInt64

    public init(machineID: String, epoch: UInt64) {
        self.machineID = machineID
        self.epoch = epoch
    }
}

/// `PUT /flotilla/v1/peer/states/<machineID>`: observed states from an agent. With `isResync`
/// the list is complete and replaces what the leader held for the machine; otherwise it carries
/// changes only, and `gone` lists units no longer seen on the machine.
public struct StateReport: Codable, Hashable, Sendable {
    public var machineID: String
    public var isResync: Bool
    public var states: [FleetUnitState]
    public var gone: [String]
    /// The registry version of the schedule the agent had acted on when it observed these
    /// states (nil from agents older than it): the leader's handoff gate places a unit that left
    /// this machine elsewhere only once the machine has acted on a schedule without it.
    public var scheduleVersion: UInt64?

    public init(machineID: String, isResync: Bool, states: [FleetUnitState], gone: [String], scheduleVersion: UInt64? = nil) {
        self.machineID = machineID
        self.isResync = isResync
        self.states = states
        self.gone = gone
        self.scheduleVersion = scheduleVersion
    }
}
