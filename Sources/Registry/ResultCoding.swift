/// The encoding of a `RegistryResult` inside a snapshot's session table: a tag, then for a
/// rejection its code and its fields as strings and numbers. Codes are the snapshot format:
/// never renumber, only append.
enum ResultCoding {
    static let stringsMax = 4
    static let stringLengthMax = 64 * 1024

    static func encode(_ result: RegistryResult, into writer: inout ByteWriter) {
        switch result {
        case .applied(let changedCount):
            writer.u8(0)
            writer.u64(UInt64(changedCount))
        case .rejected(let rejection):
            let (code, strings, numbers) = fields(of: rejection)
            writer.u8(1)
            writer.u8(code)
            writer.u8(UInt8(strings.count))
            for string in strings { writer.string(string) }
            writer.u8(UInt8(numbers.count))
            for number in numbers { writer.u64(number) }
        }
    }

    static func decode(_ reader: inout ByteReader) throws(RegistrySnapshotError) -> RegistryResult {
        let tag = try reader.u8()
        switch tag {
        case 0:
            let count = try reader.u64()
            guard count <= UInt64(Int.max) else { throw .invalidRecord("changed count \(count)") }
            return .applied(changedCount: Int(count))
        case 1:
            let code = try reader.u8()
            let stringCount = Int(try reader.u8())
            guard stringCount <= stringsMax else { throw .countTooLarge(what: "strings", count: stringCount, limit: stringsMax) }
            var strings: [String] = []
            for _ in 0..<stringCount { strings.append(try reader.string(lengthMax: stringLengthMax)) }
            let numberCount = Int(try reader.u8())
            guard numberCount <= stringsMax else { throw .countTooLarge(what: "numbers", count: numberCount, limit: stringsMax) }
            var numbers: [UInt64] = []
            for _ in 0..<numberCount { numbers.append(try reader.u64()) }
            guard let rejection = rejection(code: code, strings, numbers) else {
                throw .invalidTag(what: "rejection", tag: code)
            }
            return .rejected(rejection)
        default:
            throw .invalidTag(what: "result", tag: tag)
        }
    }

    private static func fields(of rejection: RegistryRejection) -> (UInt8, [String], [UInt64]) {
        switch rejection {
        case .indexNotAfterVersion(let index, let version): return (0, [], [index, version])
        case .staleSequence(let client, let sequence, let last): return (1, [], [client, sequence, last])
        case .emptyBatch: return (2, [], [])
        case .batchTooLarge(let count, let limit): return (3, [], [UInt64(count), UInt64(limit)])
        case .tooManyUnits(let limit): return (4, [], [UInt64(limit)])
        case .duplicateInBatch(let name): return (5, [name], [])
        case .unitNotFound(let name): return (6, [name], [])
        case .unitExists(let name, let hash): return (7, [name, hash], [])
        case .templateNotFound(let name): return (8, [name], [])
        case .unitFileMissing(let name): return (9, [name], [])
        case .unitFileTooLarge(let name, let size, let limit): return (10, [name], [UInt64(size), UInt64(limit)])
        case .unitFileNotCanonical(let name): return (11, [name], [])
        case .hashMismatch(let name): return (12, [name], [])
        case .invalidUnitFile(let name, let reason): return (13, [name, reason], [])
        case .invalidFleetOptions(let name, let reason): return (14, [name, reason], [])
        case .notSchedulable(let name): return (15, [name], [])
        case .templateCannotBeLaunched(let name): return (16, [name], [])
        case .globalUnitCannotBeAssigned(let name): return (17, [name], [])
        case .machineDrained(let machine): return (18, [machine], [])
        case .invalidMachineID(let machine): return (19, [machine], [])
        case .invalidMetadata(let key, let value): return (20, [key, value], [])
        case .tooManyMetadataEntries(let count, let limit): return (21, [], [UInt64(count), UInt64(limit)])
        case .tooManyMachines(let limit): return (22, [], [UInt64(limit)])
        case .staleLeaseEpoch(let machine, let epoch, let current): return (23, [machine], [epoch, current])
        case .invalidGossipKeyring(let reason): return (24, [reason], [])
        case .aclAlreadyBootstrapped: return (25, [], [])
        case .aclTokenNotFound(let accessor): return (26, [accessor], [])
        case .invalidACLToken(let reason): return (27, [reason], [])
        case .tooManyACLTokens(let limit): return (28, [], [UInt64(limit)])
        }
    }

    private static func rejection(code: UInt8, _ s: [String], _ n: [UInt64]) -> RegistryRejection? {
        // Counts and limits were written from `Int`s; larger values are garbage.
        func int(_ index: Int) -> Int? { n[index] <= UInt64(Int.max) ? Int(n[index]) : nil }
        switch (code, s.count, n.count) {
        case (0, 0, 2): return .indexNotAfterVersion(index: n[0], version: n[1])
        case (1, 0, 3): return .staleSequence(clientID: n[0], sequence: n[1], lastSequence: n[2])
        case (2, 0, 0): return .emptyBatch
        case (3, 0, 2): return int(0).flatMap { count in int(1).map { .batchTooLarge(count: count, limit: $0) } }
        case (4, 0, 1): return int(0).map { .tooManyUnits(limit: $0) }
        case (5, 1, 0): return .duplicateInBatch(s[0])
        case (6, 1, 0): return .unitNotFound(s[0])
        case (7, 2, 0): return .unitExists(s[0], existingHash: s[1])
        case (8, 1, 0): return .templateNotFound(s[0])
        case (9, 1, 0): return .unitFileMissing(s[0])
        case (10, 1, 2):
            return int(0).flatMap { size in int(1).map { .unitFileTooLarge(s[0], sizeBytes: size, limitBytes: $0) } }
        case (11, 1, 0): return .unitFileNotCanonical(s[0])
        case (12, 1, 0): return .hashMismatch(s[0])
        case (13, 2, 0): return .invalidUnitFile(s[0], reason: s[1])
        case (14, 2, 0): return .invalidFleetOptions(s[0], reason: s[1])
        case (15, 1, 0): return .notSchedulable(s[0])
        case (16, 1, 0): return .templateCannotBeLaunched(s[0])
        case (17, 1, 0): return .globalUnitCannotBeAssigned(s[0])
        case (18, 1, 0): return .machineDrained(s[0])
        case (19, 1, 0): return .invalidMachineID(s[0])
        case (20, 2, 0): return .invalidMetadata(key: s[0], value: s[1])
        case (21, 0, 2): return int(0).flatMap { count in int(1).map { .tooManyMetadataEntries(count: count, limit: $0) } }
        case (22, 0, 1): return int(0).map { .tooManyMachines(limit: $0) }
        case (23, 1, 2): return .staleLeaseEpoch(machine: s[0], epoch: n[0], currentEpoch: n[1])
        case (24, 1, 0): return .invalidGossipKeyring(s[0])
        case (25, 0, 0): return .aclAlreadyBootstrapped
        case (26, 1, 0): return .aclTokenNotFound(s[0])
        case (27, 1, 0): return .invalidACLToken(s[0])
        case (28, 0, 1): return int(0).map { .tooManyACLTokens(limit: $0) }
        default: return nil
        }
    }
}
