import UnitFile

/// What a unit should be doing, as in fleet's Documentation/states.md: `inactive` (known, not
/// scheduled), `loaded` (scheduled and loaded into systemd, not started), `launched` (started).
/// The raw values are the snapshot encoding: never renumber.
public enum TargetState: UInt8, Hashable, Sendable, Comparable, CaseIterable, CustomStringConvertible {
    case inactive = 0
    case loaded = 1
    case launched = 2

    public static func < (lhs: TargetState, rhs: TargetState) -> Bool { lhs.rawValue < rhs.rawValue }
    public var description: String {
        switch self {
        case .inactive: return "inactive"
        case .loaded: return "loaded"
        case .launched: return "launched"
        }
    }
}

/// A machine's identity (systemd's `/etc/machine-id` in fleet): 1 to `lengthMax` bytes of
/// ASCII letters, digits, `-`, `_` and `.`, so it can never smuggle separators into keys or logs.
public struct MachineID: Hashable, Sendable, Comparable, CustomStringConvertible {
    public static let lengthMax = 128
    public let rawValue: String

    public init(_ rawValue: String) throws(RegistryRejection) {
        let bytes = rawValue.utf8
        guard !bytes.isEmpty, bytes.count <= Self.lengthMax,
              bytes.allSatisfy({ Self.isAllowed($0) })
        else { throw .invalidMachineID(String(rawValue.prefix(Self.lengthMax))) }
        self.rawValue = rawValue
    }

    private static func isAllowed(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
             UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "."):
            return true
        default:
            return false
        }
    }

    public static func < (lhs: MachineID, rhs: MachineID) -> Bool { lhs.rawValue < rhs.rawValue }
    public var description: String { rawValue }
}

/// Identifies a client command for exactly-once application (Raft thesis §6.3): a client numbers
/// its commands with increasing `sequence`s and has at most one outstanding.
public struct ClientStamp: Hashable, Sendable {
    public var clientID: UInt64
    public var sequence: UInt64
    public init(clientID: UInt64, sequence: UInt64) {
        self.clientID = clientID
        self.sequence = sequence
    }
}

/// One unit placed on one machine.
public struct Assignment: Hashable, Sendable {
    public var unit: UnitName
    public var machine: MachineID
    public init(unit: UnitName, machine: MachineID) {
        self.unit = unit
        self.machine = machine
    }
}

/// A unit to create: its name, its canonical file (`UnitFile.serializedBytes()`) and that file's
/// hash, and its first target state. For an instance whose template is stored, `file` may be nil:
/// the template's file is used, as fleet did.
public struct UnitSubmission: Hashable, Sendable {
    public var name: UnitName
    public var file: [UInt8]?
    public var hash: UnitHash?
    public var targetState: TargetState
    public init(name: UnitName, file: [UInt8]?, hash: UnitHash?, targetState: TargetState) {
        self.name = name
        self.file = file
        self.hash = hash
        self.targetState = targetState
    }

    /// A submission of `unitFile`'s canonical form.
    public init(name: UnitName, unitFile: UnitFile, targetState: TargetState) {
        self.init(name: name, file: unitFile.serializedBytes(), hash: unitFile.hash, targetState: targetState)
    }
}

/// One metadata pair of a machine (fleet's `metadata` config option).
public struct MetadataEntry: Hashable, Sendable, Comparable {
    public var key: String
    public var value: String
    public init(key: String, value: String) {
        self.key = key
        self.value = value
    }
    public static func < (lhs: MetadataEntry, rhs: MetadataEntry) -> Bool { (lhs.key, lhs.value) < (rhs.key, rhs.value) }
}
