import UnitFile

/// The bytes of a `RegistryCommand` inside a Raft log entry, and of a `RegistryResult` in the
/// answer to its proposer. All integers little-endian, the same primitives as the snapshot:
///
///     magic "FLRC", format u16 = 1,
///     stamp: u8 0 | u8 1, clientID u64, sequence u64,
///     operation tag u8 (never renumbered, only appended), then its fields.
///
/// A log entry outlives the binary that wrote it, so decoding checks every count against the
/// registry's limits and never traps on garbage: a replica that cannot decode a committed entry
/// must say so loudly (the caller treats it as corruption), not apply half of it.
extension RegistryCommand {
    static let magic: [UInt8] = Array("FLRC".utf8)
    public static let encodingFormatVersion: UInt16 = 1

    public func encoded() -> [UInt8] {
        var writer = ByteWriter()
        writer.bytes.append(contentsOf: Self.magic)
        writer.u16(Self.encodingFormatVersion)
        if let stamp {
            writer.u8(1)
            writer.u64(stamp.clientID)
            writer.u64(stamp.sequence)
        } else {
            writer.u8(0)
        }
        Self.encode(operation, into: &writer)
        return writer.bytes
    }

    public static func decode(_ bytes: [UInt8], limits: RegistryLimits = .standard) throws(RegistrySnapshotError) -> RegistryCommand {
        var reader = ByteReader(bytes)
        guard let magic = try? reader.take(4), magic.elementsEqual(Self.magic) else { throw .badMagic }
        let format = try reader.u16()
        guard format == encodingFormatVersion else { throw .unsupportedFormatVersion(format) }
        var stamp: ClientStamp?
        switch try reader.u8() {
        case 0: stamp = nil
        case 1: stamp = ClientStamp(clientID: try reader.u64(), sequence: try reader.u64())
        case let tag: throw .invalidTag(what: "stamp", tag: tag)
        }
        let operation = try decodeOperation(&reader, limits: limits)
        guard reader.remaining == 0 else { throw .trailingBytes(count: reader.remaining) }
        return RegistryCommand(operation, stamp: stamp)
    }

    private static func encode(_ operation: RegistryOperation, into writer: inout ByteWriter) {
        switch operation {
        case .submitUnits(let submissions):
            writer.u8(1)
            encode(submissions, into: &writer)
        case .replaceUnitFiles(let submissions):
            writer.u8(2)
            encode(submissions, into: &writer)
        case .setTargetState(let names, let target):
            writer.u8(3)
            writer.u8(target.rawValue)
            encode(names, into: &writer)
        case .destroyUnits(let names):
            writer.u8(4)
            encode(names, into: &writer)
        case .assign(let assignments):
            writer.u8(5)
            writer.u32(UInt32(assignments.count))
            for assignment in assignments {
                writer.string(assignment.unit.rawValue)
                writer.string(assignment.machine.rawValue)
            }
        case .unassign(let names):
            writer.u8(6)
            encode(names, into: &writer)
        case .setMachineMetadata(let machine, let entries):
            writer.u8(7)
            writer.string(machine.rawValue)
            writer.u32(UInt32(entries.count))
            for entry in entries {
                writer.string(entry.key)
                writer.string(entry.value)
            }
        case .drainMachine(let machine):
            writer.u8(8)
            writer.string(machine.rawValue)
        case .undrainMachine(let machine):
            writer.u8(9)
            writer.string(machine.rawValue)
        case .revokeLease(let machine, let epoch):
            writer.u8(10)
            writer.string(machine.rawValue)
            writer.u64(epoch)
        case .advanceLease(let machine, let epoch):
            writer.u8(11)
            writer.string(machine.rawValue)
            writer.u64(epoch)
        case .setGossipKeyring(let keys):
            writer.u8(12)
            writer.u8(UInt8(truncatingIfNeeded: keys.count))
            for key in keys { writer.blob(key) }
        case .createACLToken(let record, let bootstrap):
            writer.u8(13)
            writer.u8(bootstrap ? 1 : 0)
            encode(record, into: &writer)
        case .deleteACLToken(let accessor):
            writer.u8(14)
            writer.string(accessor)
        case .setNoSpaceAlarm(let machine, let raised):
            writer.u8(15)
            writer.string(machine.rawValue)
            writer.u8(raised ? 1 : 0)
        case .putUnit(let submission, let targetGiven):
            writer.u8(16)
            writer.u8(targetGiven ? 1 : 0)
            encode([submission], into: &writer)
        }
    }

    private static func encode(_ submissions: [UnitSubmission], into writer: inout ByteWriter) {
        writer.u32(UInt32(submissions.count))
        for submission in submissions {
            writer.string(submission.name.rawValue)
            writer.u8(submission.targetState.rawValue)
            if let file = submission.file {
                writer.u8(1)
                writer.blob(file)
            } else {
                writer.u8(0)
            }
            if let hash = submission.hash {
                writer.u8(1)
                writer.string(hash.hex)
            } else {
                writer.u8(0)
            }
        }
    }

    private static func encode(_ names: [UnitName], into writer: inout ByteWriter) {
        writer.u32(UInt32(names.count))
        for name in names { writer.string(name.rawValue) }
    }

    private static func decodeOperation(_ reader: inout ByteReader, limits: RegistryLimits) throws(RegistrySnapshotError) -> RegistryOperation {
        // A batch larger than the limit would be rejected on apply anyway; refusing it here
        // bounds the memory a hostile or corrupt entry can make a replica allocate.
        let tag = try reader.u8()
        switch tag {
        case 1: return .submitUnits(try submissions(&reader, limits: limits))
        case 2: return .replaceUnitFiles(try submissions(&reader, limits: limits))
        case 3:
            let raw = try reader.u8()
            guard let target = TargetState(rawValue: raw) else { throw .invalidTag(what: "target state", tag: raw) }
            return .setTargetState(try names(&reader, limits: limits), target)
        case 4: return .destroyUnits(try names(&reader, limits: limits))
        case 5:
            let count = try batchCount(&reader, limits: limits)
            var assignments: [Assignment] = []
            assignments.reserveCapacity(count)
            for _ in 0..<count {
                assignments.append(Assignment(unit: try unitName(&reader), machine: try machineID(&reader)))
            }
            return .assign(assignments)
        case 6: return .unassign(try names(&reader, limits: limits))
        case 7:
            let machine = try machineID(&reader)
            let count = Int(try reader.u32())
            guard count <= limits.metadataEntriesMax else {
                throw .countTooLarge(what: "metadata entries", count: count, limit: limits.metadataEntriesMax)
            }
            var entries: [MetadataEntry] = []
            for _ in 0..<count {
                let key = try reader.string(lengthMax: limits.metadataLengthMax)
                let value = try reader.string(lengthMax: limits.metadataLengthMax)
                entries.append(MetadataEntry(key: key, value: value))
            }
            return .setMachineMetadata(machine, entries)
        case 8: return .drainMachine(try machineID(&reader))
        case 9: return .undrainMachine(try machineID(&reader))
        case 10: return .revokeLease(try machineID(&reader), epoch: try reader.u64())
        case 11: return .advanceLease(try machineID(&reader), epoch: try reader.u64())
        case 12: return .setGossipKeyring(try gossipKeys(&reader))
        case 13:
            let bootstrap: Bool
            switch try reader.u8() {
            case 0: bootstrap = false
            case 1: bootstrap = true
            case let tag: throw .invalidTag(what: "bootstrap", tag: tag)
            }
            return .createACLToken(try aclToken(&reader), bootstrap: bootstrap)
        case 14: return .deleteACLToken(accessorID: try reader.string(lengthMax: ACLTokenRecord.textLengthMax))
        case 15:
            let machine = try machineID(&reader)
            switch try reader.u8() {
            case 0: return .setNoSpaceAlarm(machine, raised: false)
            case 1: return .setNoSpaceAlarm(machine, raised: true)
            case let tag: throw .invalidTag(what: "alarm state", tag: tag)
            }
        case 16:
            let targetGiven: Bool
            switch try reader.u8() {
            case 0: targetGiven = false
            case 1: targetGiven = true
            case let tag: throw .invalidTag(what: "target presence", tag: tag)
            }
            let batch = try submissions(&reader, limits: limits)
            guard batch.count == 1 else { throw .invalidRecord("a put carries one unit, not \(batch.count)") }
            return .putUnit(batch[0], targetGiven: targetGiven)
        default: throw .invalidTag(what: "operation", tag: tag)
        }
    }

    static func encode(_ record: ACLTokenRecord, into writer: inout ByteWriter) {
        writer.string(record.accessorID)
        writer.blob(record.secretHash)
        writer.string(record.name)
        writer.u8(UInt8(truncatingIfNeeded: record.policies.count))
        for policy in record.policies { writer.string(policy) }
    }

    /// Bounded like every count here; the record's meaning is checked on apply.
    static func aclToken(_ reader: inout ByteReader) throws(RegistrySnapshotError) -> ACLTokenRecord {
        let accessor = try reader.string(lengthMax: ACLTokenRecord.textLengthMax)
        let hash = try reader.blob(lengthMax: ACLTokenRecord.secretHashBytes)
        let name = try reader.string(lengthMax: ACLTokenRecord.textLengthMax)
        let count = Int(try reader.u8())
        guard count <= ACLTokenRecord.policiesMax else {
            throw .countTooLarge(what: "ACL policies", count: count, limit: ACLTokenRecord.policiesMax)
        }
        var policies: [String] = []
        for _ in 0..<count { policies.append(try reader.string(lengthMax: ACLTokenRecord.textLengthMax)) }
        return ACLTokenRecord(accessorID: accessor, secretHash: hash, name: name, policies: policies)
    }

    /// A count byte, then each key as a blob; only the bounds are checked here (apply checks the
    /// rest, so every replica rejects the same commands).
    static func gossipKeys(_ reader: inout ByteReader) throws(RegistrySnapshotError) -> [[UInt8]] {
        let count = Int(try reader.u8())
        guard count <= GossipKeyringRecord.keysMax else {
            throw .countTooLarge(what: "gossip keys", count: count, limit: GossipKeyringRecord.keysMax)
        }
        var keys: [[UInt8]] = []
        for _ in 0..<count { keys.append(try reader.blob(lengthMax: GossipKeyringRecord.keyBytes)) }
        return keys
    }

    private static func batchCount(_ reader: inout ByteReader, limits: RegistryLimits) throws(RegistrySnapshotError) -> Int {
        let count = Int(try reader.u32())
        guard count <= limits.batchCountMax else {
            throw .countTooLarge(what: "batch elements", count: count, limit: limits.batchCountMax)
        }
        return count
    }

    private static func submissions(_ reader: inout ByteReader, limits: RegistryLimits) throws(RegistrySnapshotError) -> [UnitSubmission] {
        let count = try batchCount(&reader, limits: limits)
        var result: [UnitSubmission] = []
        result.reserveCapacity(count)
        for _ in 0..<count {
            let name = try unitName(&reader)
            let raw = try reader.u8()
            guard let target = TargetState(rawValue: raw) else { throw .invalidTag(what: "target state", tag: raw) }
            var file: [UInt8]?
            switch try reader.u8() {
            case 0: file = nil
            case 1: file = try reader.blob(lengthMax: limits.unitFileSizeMax)
            case let tag: throw .invalidTag(what: "file presence", tag: tag)
            }
            var hash: UnitHash?
            switch try reader.u8() {
            case 0: hash = nil
            case 1:
                let hex = try reader.string(lengthMax: SHA1.digestByteCount * 2)
                do { hash = try UnitHash(hex: hex) } catch { throw .invalidRecord("hash: \(error)") }
            case let tag: throw .invalidTag(what: "hash presence", tag: tag)
            }
            result.append(UnitSubmission(name: name, file: file, hash: hash, targetState: target))
        }
        return result
    }

    private static func names(_ reader: inout ByteReader, limits: RegistryLimits) throws(RegistrySnapshotError) -> [UnitName] {
        let count = try batchCount(&reader, limits: limits)
        var result: [UnitName] = []
        result.reserveCapacity(count)
        for _ in 0..<count { result.append(try unitName(&reader)) }
        return result
    }

    private static func unitName(_ reader: inout ByteReader) throws(RegistrySnapshotError) -> UnitName {
        try reader.unitName()
    }

    private static func machineID(_ reader: inout ByteReader) throws(RegistrySnapshotError) -> MachineID {
        try reader.machineID()
    }
}

extension RegistryResult {
    public func encoded() -> [UInt8] {
        var writer = ByteWriter()
        ResultCoding.encode(self, into: &writer)
        return writer.bytes
    }

    public static func decode(_ bytes: [UInt8]) throws(RegistrySnapshotError) -> RegistryResult {
        var reader = ByteReader(bytes)
        let result = try ResultCoding.decode(&reader)
        guard reader.remaining == 0 else { throw .trailingBytes(count: reader.remaining) }
        return result
    }
}
