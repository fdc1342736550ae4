import UnitFile

/// Why bytes are not a registry snapshot. Restoring never crashes on garbage.
public enum RegistrySnapshotError: Error, Hashable, Sendable, CustomStringConvertible {
    case badMagic
    case unsupportedFormatVersion(UInt16)
    case truncated(offset: Int)
    case trailingBytes(count: Int)
    case countTooLarge(what: String, count: Int, limit: Int)
    case invalidString(offset: Int)
    case invalidTag(what: String, tag: UInt8)
    case invalidRecord(String)
    case notSorted(what: String)

    public var description: String {
        switch self {
        case .badMagic: return "not a registry snapshot (bad magic)"
        case .unsupportedFormatVersion(let version): return "unsupported registry snapshot format \(version)"
        case .truncated(let offset): return "snapshot truncated at byte \(offset)"
        case .trailingBytes(let count): return "\(count) bytes after the end of the snapshot"
        case .countTooLarge(let what, let count, let limit): return "\(count) \(what), limit \(limit)"
        case .invalidString(let offset): return "invalid string at byte \(offset)"
        case .invalidTag(let what, let tag): return "invalid \(what) tag \(tag)"
        case .invalidRecord(let reason): return "invalid record: \(reason)"
        case .notSorted(let what): return "\(what) not in strictly increasing order"
        }
    }
}

/// Snapshot format 6, all integers little-endian:
///
///     "FLRG" u16 format=3 u64 version
///     u32 count, units sorted by name:      str name, bytes file, u8 target, u64 activeSince, u8 hasMachine [str machine]
///     u32 count, templates sorted by name:  str name, bytes file
///     u32 count, machines sorted by id:     str id, u8 drained, u64 lease epoch, u16 count [str key, str value]...
///     u32 count, sessions sorted by client: u64 client, u64 sequence, u64 index, result
///     u8 hasKeyring [u8 count, bytes key...]   (format 4 on)
///     u32 count, ACL tokens sorted by accessor: str accessor, bytes hash, str name, u8 count [str policy]   (format 5 on)
///     u32 count, NOSPACE alarms sorted by machine: str machine   (format 6 on)
///
/// Hashes and `[X-Fleet]` options are not stored: restore recomputes them from the files, so a
/// snapshot cannot carry a hash that disagrees with its file. Requiring sorted, unique keys makes
/// the encoding canonical: one state, one byte string. Format 1 (before lease epochs) is still
/// read: its machines are at epoch 0; formats 1 and 2 (before `activeSince`) read their active
/// units as launched at version 0, so conflicting global units fall back to name order; formats
/// 1 to 3 (before the replicated gossip keyring) hold no keyring, formats 1 to 4 no ACL tokens,
/// formats 1 to 5 no alarms.
/// Integrity (checksums) belongs to the snapshot file that carries these bytes (Storage).
extension RegistryState {
    static let snapshotMagic: [UInt8] = Array("FLRG".utf8)
    public static let snapshotFormatVersion: UInt16 = 6
    static let snapshotFormatVersionsRead: ClosedRange<UInt16> = 1...6

    public func snapshot() -> [UInt8] {
        var writer = ByteWriter()
        writer.bytes.append(contentsOf: Self.snapshotMagic)
        writer.u16(Self.snapshotFormatVersion)
        writer.u64(version)
        writer.u32(UInt32(units.count))
        for unit in unitsSortedByName {
            writer.string(unit.name.rawValue)
            writer.blob(unit.file)
            writer.u8(unit.targetState.rawValue)
            writer.u64(unit.activeSince)
            writer.u8(unit.machine == nil ? 0 : 1)
            if let machine = unit.machine { writer.string(machine.rawValue) }
        }
        writer.u32(UInt32(templates.count))
        for name in templates.keys.sorted() {
            writer.string(name.rawValue)
            writer.blob(templates[name]!.file)
        }
        writer.u32(UInt32(machines.count))
        for machine in machinesSortedByID {
            writer.string(machine.id.rawValue)
            writer.u8(machine.isDrained ? 1 : 0)
            writer.u64(machine.leaseEpoch)
            writer.u16(UInt16(machine.metadata.count))
            for entry in machine.metadata {
                writer.string(entry.key)
                writer.string(entry.value)
            }
        }
        writer.u32(UInt32(sessions.count))
        for clientID in sessions.keys.sorted() {
            let session = sessions[clientID]!
            writer.u64(session.clientID)
            writer.u64(session.lastSequence)
            writer.u64(session.lastIndex)
            ResultCoding.encode(session.lastResult, into: &writer)
        }
        if let gossipKeyring {
            writer.u8(1)
            writer.u8(UInt8(gossipKeyring.keys.count))
            for key in gossipKeyring.keys { writer.blob(key) }
        } else {
            writer.u8(0)
        }
        writer.u32(UInt32(aclTokens.count))
        for accessor in aclTokens.keys.sorted() { RegistryCommand.encode(aclTokens[accessor]!, into: &writer) }
        writer.u32(UInt32(noSpaceAlarms.count))
        for machine in noSpaceAlarms.sorted() { writer.string(machine.rawValue) }
        return writer.bytes
    }

    /// Replaces this state with the snapshot's; on error the state is unchanged.
    public mutating func restore(from bytes: [UInt8]) throws(RegistrySnapshotError) {
        var reader = ByteReader(bytes)
        guard let magic = try? reader.take(4), magic.elementsEqual(Self.snapshotMagic) else { throw .badMagic }
        let format = try reader.u16()
        guard Self.snapshotFormatVersionsRead.contains(format) else { throw .unsupportedFormatVersion(format) }
        var restored = RegistryState(limits: limits)
        restored.version = try reader.u64()
        try restored.readUnits(&reader, hasActiveSince: format >= 3)
        try restored.readTemplates(&reader)
        try restored.readMachines(&reader, hasLeaseEpochs: format >= 2)
        try restored.readSessions(&reader)
        if format >= 4 {
            switch try reader.u8() {
            case 0: break
            case 1:
                let keys = try RegistryCommand.gossipKeys(&reader)
                if let reason = GossipKeyringRecord.validate(keys) { throw .invalidRecord("gossip keyring: \(reason)") }
                restored.gossipKeyring = GossipKeyringRecord(keys: keys)
            case let tag: throw .invalidTag(what: "keyring presence", tag: tag)
            }
        }
        if format >= 5 {
            let tokenCount = try count(&reader, "ACL tokens", limit: ACLTokenRecord.tokensMax)
            var previous: String?
            for _ in 0..<tokenCount {
                let record = try RegistryCommand.aclToken(&reader)
                guard previous.map({ $0 < record.accessorID }) ?? true else { throw .notSorted(what: "ACL tokens") }
                previous = record.accessorID
                if let reason = record.invalidReason { throw .invalidRecord("ACL token \(record.accessorID): needs \(reason)") }
                restored.aclTokens[record.accessorID] = record
            }
        }
        if format >= 6 {
            let alarmCount = try count(&reader, "NOSPACE alarms", limit: Self.noSpaceAlarmsMax)
            var previous: MachineID?
            for _ in 0..<alarmCount {
                let machine = try Self.machineID(&reader)
                guard previous.map({ $0 < machine }) ?? true else { throw .notSorted(what: "NOSPACE alarms") }
                previous = machine
                restored.noSpaceAlarms.insert(machine)
            }
        }
        guard reader.remaining == 0 else { throw .trailingBytes(count: reader.remaining) }
        self = restored
    }

    private func count(_ reader: inout ByteReader, _ what: String, limit: Int) throws(RegistrySnapshotError) -> Int {
        let count = Int(try reader.u32())
        guard count <= limit else { throw .countTooLarge(what: what, count: count, limit: limit) }
        return count
    }

    private static func unitName(_ reader: inout ByteReader) throws(RegistrySnapshotError) -> UnitName {
        try reader.unitName()
    }

    private static func machineID(_ reader: inout ByteReader) throws(RegistrySnapshotError) -> MachineID {
        try reader.machineID()
    }

    private mutating func readUnits(_ reader: inout ByteReader, hasActiveSince: Bool) throws(RegistrySnapshotError) {
        let unitCount = try count(&reader, "units", limit: limits.unitsMax)
        var previous: UnitName?
        for _ in 0..<unitCount {
            let name = try Self.unitName(&reader)
            guard previous.map({ $0 < name }) ?? true else { throw .notSorted(what: "units") }
            previous = name
            let file = try reader.blob(lengthMax: limits.unitFileSizeMax)
            let tag = try reader.u8()
            guard let target = TargetState(rawValue: tag) else { throw .invalidTag(what: "target state", tag: tag) }
            let activeSince = hasActiveSince ? try reader.u64() : 0
            guard activeSince <= version, target != .inactive || activeSince == 0 else {
                throw .invalidRecord("\(name): launched at version \(activeSince) with target \(target) in a snapshot at version \(version)")
            }
            let hasMachine = try reader.u8()
            guard hasMachine <= 1 else { throw .invalidTag(what: "machine presence", tag: hasMachine) }
            let machine = hasMachine == 1 ? try Self.machineID(&reader) : nil
            guard name.form != .template else { throw .invalidRecord("template \(name) among units") }
            let validated: ValidatedFile
            do {
                validated = try Self.validate(file, claimedHash: nil, for: name, sizeMax: limits.unitFileSizeMax)
            } catch { throw .invalidRecord(error.description) }
            guard machine == nil || !validated.options.isGlobal else {
                throw .invalidRecord("global unit \(name) has a machine")
            }
            store(name, validated, targetState: target, machine: machine, activeSince: activeSince)
        }
    }

    private mutating func readTemplates(_ reader: inout ByteReader) throws(RegistrySnapshotError) {
        let templateCount = try count(&reader, "templates", limit: limits.unitsMax - units.count)
        var previous: UnitName?
        for _ in 0..<templateCount {
            let name = try Self.unitName(&reader)
            guard previous.map({ $0 < name }) ?? true else { throw .notSorted(what: "templates") }
            previous = name
            let file = try reader.blob(lengthMax: limits.unitFileSizeMax)
            guard name.form == .template else { throw .invalidRecord("\(name) is not a template") }
            do {
                let validated = try Self.validate(file, claimedHash: nil, for: name, sizeMax: limits.unitFileSizeMax)
                store(name, validated, targetState: .inactive, machine: nil)
            } catch { throw .invalidRecord(error.description) }
        }
    }

    private mutating func readMachines(_ reader: inout ByteReader, hasLeaseEpochs: Bool) throws(RegistrySnapshotError) {
        let machineCount = try count(&reader, "machines", limit: limits.machinesMax)
        var previous: MachineID?
        for _ in 0..<machineCount {
            let id = try Self.machineID(&reader)
            guard previous.map({ $0 < id }) ?? true else { throw .notSorted(what: "machines") }
            previous = id
            let drained = try reader.u8()
            guard drained <= 1 else { throw .invalidTag(what: "drained", tag: drained) }
            let leaseEpoch = hasLeaseEpochs ? try reader.u64() : 0
            let entryCount = Int(try reader.u16())
            guard entryCount <= limits.metadataEntriesMax else {
                throw .countTooLarge(what: "metadata entries", count: entryCount, limit: limits.metadataEntriesMax)
            }
            var entries: [MetadataEntry] = []
            for _ in 0..<entryCount {
                let key = try reader.string(lengthMax: limits.metadataLengthMax)
                let value = try reader.string(lengthMax: limits.metadataLengthMax)
                entries.append(MetadataEntry(key: key, value: value))
            }
            let validated: [MetadataEntry]
            do { validated = try validatedMetadata(entries) } catch { throw .invalidRecord(error.description) }
            guard validated == entries else { throw .notSorted(what: "metadata of \(id)") }
            machines[id] = MachineRecord(id: id, metadata: entries, isDrained: drained == 1, leaseEpoch: leaseEpoch)
        }
    }

    private mutating func readSessions(_ reader: inout ByteReader) throws(RegistrySnapshotError) {
        let sessionCount = try count(&reader, "client sessions", limit: limits.clientSessionsMax)
        var previous: UInt64?
        for _ in 0..<sessionCount {
            let clientID = try reader.u64()
            guard previous.map({ $0 < clientID }) ?? true else { throw .notSorted(what: "client sessions") }
            previous = clientID
            let sequence = try reader.u64()
            let index = try reader.u64()
            let result = try ResultCoding.decode(&reader)
            sessions[clientID] = ClientSession(clientID: clientID, lastSequence: sequence, lastIndex: index, lastResult: result)
        }
    }
}

struct ByteWriter {
    var bytes: [UInt8] = []
    mutating func u8(_ value: UInt8) { bytes.append(value) }
    mutating func u16(_ value: UInt16) { for shift in stride(from: 0, to: 16, by: 8) { bytes.append(UInt8(truncatingIfNeeded: value >> shift)) } }
    mutating func u32(_ value: UInt32) { for shift in stride(from: 0, to: 32, by: 8) { bytes.append(UInt8(truncatingIfNeeded: value >> shift)) } }
    mutating func u64(_ value: UInt64) { for shift in stride(from: 0, to: 64, by: 8) { bytes.append(UInt8(truncatingIfNeeded: value >> shift)) } }
    mutating func blob(_ value: [UInt8]) {
        u32(UInt32(value.count))
        bytes.append(contentsOf: value)
    }
    mutating func string(_ value: String) { blob(Array(value.utf8)) }
}

struct ByteReader {
    let bytes: [UInt8]
    var offset = 0
    init(_ bytes: [UInt8]) { self.bytes = bytes }
    var remaining: Int { bytes.count - offset }

    mutating func take(_ count: Int) throws(RegistrySnapshotError) -> ArraySlice<UInt8> {
        guard count >= 0, count <= remaining else { throw .truncated(offset: offset) }
        defer { offset += count }
        return bytes[offset..<(offset + count)]
    }
    mutating func integer<T: FixedWidthInteger & UnsignedInteger>(_: T.Type) throws(RegistrySnapshotError) -> T {
        var value: T = 0
        for (position, byte) in try take(T.bitWidth / 8).enumerated() { value |= T(byte) << (position * 8) }
        return value
    }
    mutating func u8() throws(RegistrySnapshotError) -> UInt8 { try integer(UInt8.self) }
    mutating func u16() throws(RegistrySnapshotError) -> UInt16 { try integer(UInt16.self) }
    mutating func u32() throws(RegistrySnapshotError) -> UInt32 { try integer(UInt32.self) }
    mutating func u64() throws(RegistrySnapshotError) -> UInt64 { try integer(UInt64.self) }
    mutating func blob(lengthMax: Int) throws(RegistrySnapshotError) -> [UInt8] {
        let length = Int(try u32())
        guard length <= lengthMax else { throw .countTooLarge(what: "bytes", count: length, limit: lengthMax) }
        return Array(try take(length))
    }
    /// A unit name, validated (snapshots and log entries share this encoding).
    mutating func unitName() throws(RegistrySnapshotError) -> UnitName {
        let text = try string(lengthMax: UnitName.lengthMax)
        do { return try UnitName(text) } catch { throw .invalidRecord(error.description) }
    }

    mutating func machineID() throws(RegistrySnapshotError) -> MachineID {
        let text = try string(lengthMax: MachineID.lengthMax)
        do { return try MachineID(text) } catch { throw .invalidRecord(error.description) }
    }

    mutating func string(lengthMax: Int) throws(RegistrySnapshotError) -> String {
        let start = offset
        let raw = try blob(lengthMax: lengthMax)
        guard let text = String(validating: raw, as: UTF8.self) else { throw .invalidString(offset: start) }
        return text
    }
}
