import TestSupport
import Registry
import Testing
import UnitFile

@Suite(.onBackgroundThreads) struct CommandCodingTests {
    static func sampleCommands() throws -> [RegistryCommand] {
        let file = try UnitFile(parsing: "[Service]\nExecStart=/bin/sleep 100\n[X-Fleet]\nGlobal=false\n")
        let web = try UnitName("web.service")
        let instance = try UnitName("web@1.service")
        let machine = try MachineID("0123456789abcdef0123456789abcdef")
        return [
            RegistryCommand(.submitUnits([UnitSubmission(name: web, unitFile: file, targetState: .launched),
                                          UnitSubmission(name: instance, file: nil, hash: nil, targetState: .loaded)]),
                            stamp: ClientStamp(clientID: 7, sequence: 42)),
            RegistryCommand(.replaceUnitFiles([UnitSubmission(name: web, unitFile: file, targetState: .inactive)])),
            RegistryCommand(.setTargetState([web, instance], .launched)),
            RegistryCommand(.destroyUnits([web])),
            RegistryCommand(.assign([Assignment(unit: web, machine: machine)])),
            RegistryCommand(.unassign([instance])),
            RegistryCommand(.setMachineMetadata(machine, [MetadataEntry(key: "region", value: "eu")])),
            RegistryCommand(.drainMachine(machine)),
            RegistryCommand(.undrainMachine(machine), stamp: ClientStamp(clientID: .max, sequence: 0)),
            RegistryCommand(.setGossipKeyring([[UInt8](repeating: 1, count: 32), [UInt8](repeating: 2, count: 32)])),
            RegistryCommand(.createACLToken(ACLTokenRecord(accessorID: "0011", secretHash: [UInt8](repeating: 3, count: 32), name: "ops",
                                                           policies: ["read", "units:web-*"]), bootstrap: true)),
            RegistryCommand(.deleteACLToken(accessorID: "0011")),
            RegistryCommand(.setNoSpaceAlarm(machine, raised: true)),
            RegistryCommand(.setNoSpaceAlarm(machine, raised: false)),
            RegistryCommand(.putUnit(UnitSubmission(name: web, unitFile: file, targetState: .launched), targetGiven: true)),
            RegistryCommand(.putUnit(UnitSubmission(name: instance, file: nil, hash: nil, targetState: .inactive), targetGiven: false),
                            stamp: ClientStamp(clientID: 3, sequence: 9)),
        ]
    }

    @Test func aKeyringCommandIsBoundedBeforeAllocation() throws {
        let nine = RegistryCommand(.setGossipKeyring((0..<9).map { [UInt8](repeating: $0, count: 32) })).encoded()
        #expect(throws: RegistrySnapshotError.countTooLarge(what: "gossip keys", count: 9, limit: 8)) { try RegistryCommand.decode(nine) }
        let long = RegistryCommand(.setGossipKeyring([[UInt8](repeating: 1, count: 33)])).encoded()
        #expect(throws: RegistrySnapshotError.self) { try RegistryCommand.decode(long) }
    }

    @Test func everyOperationRoundTrips() throws {
        for command in try Self.sampleCommands() {
            #expect(try RegistryCommand.decode(command.encoded()) == command)
        }
    }

    @Test func everyTruncationAndTrailingByteIsRefusedWithoutTrapping() throws {
        for command in try Self.sampleCommands() {
            let bytes = command.encoded()
            for length in 0..<bytes.count {
                #expect(throws: RegistrySnapshotError.self) { try RegistryCommand.decode(Array(bytes[..<length])) }
            }
            #expect(throws: RegistrySnapshotError.trailingBytes(count: 1)) { try RegistryCommand.decode(bytes + [0]) }
        }
    }

    @Test func flippedBytesNeverTrap() throws {
        // Garbage must come back as an error or as some other valid command, never a crash.
        var random = SystemRandomNumberGenerator()
        for command in try Self.sampleCommands() {
            let bytes = command.encoded()
            for _ in 0..<200 {
                var mutated = bytes
                mutated[Int.random(in: 0..<mutated.count, using: &random)] ^= UInt8.random(in: 1...255, using: &random)
                _ = try? RegistryCommand.decode(mutated)
            }
        }
        #expect(throws: RegistrySnapshotError.badMagic) { try RegistryCommand.decode(Array("XXXX".utf8)) }
    }

    @Test func oversizedBatchesAreRefusedBeforeAllocation() throws {
        let limits = RegistryLimits(unitsMax: 10, machinesMax: 10, batchCountMax: 2, clientSessionsMax: 10,
                                    unitFileSizeMax: 1024, metadataEntriesMax: 4, metadataLengthMax: 16)
        let names = try (1...3).map { try UnitName("u\($0).service") }
        let bytes = RegistryCommand(.destroyUnits(names)).encoded()
        #expect(throws: RegistrySnapshotError.countTooLarge(what: "batch elements", count: 3, limit: 2)) {
            try RegistryCommand.decode(bytes, limits: limits)
        }
    }

    @Test func resultsRoundTrip() throws {
        let results: [RegistryResult] = [.applied(changedCount: 3), .rejected(.unitNotFound("x.service")),
                                         .rejected(.batchTooLarge(count: 9, limit: 8))]
        for result in results { #expect(try RegistryResult.decode(result.encoded()) == result) }
    }
}
