import TestSupport
import Testing
import UnitFile
@testable import Registry

/// The registry is a replicated state machine: replicas that apply the same log must agree byte
/// for byte, including a replica that joined from a snapshot halfway. Commands are drawn from a
/// seeded generator over small pools of names, so many are invalid, duplicated or retried.
@Suite(.onBackgroundThreads) struct ReplicaDeterminismTests {
    static let unitNames = ["a.service", "b.service", "t@.service", "t@1.service", "t@2.service", "g.service"].map(name)
    static let machines = ["m1", "m2", "m3"].map(machine)
    static let fleetSections = ["", "Global=true", "Conflicts=t@*.service", "MachineOf=a.service", "MachineMetadata=disk=ssd"]

    static func randomOperation(_ random: inout SplitMix64) -> RegistryOperation {
        func pick<T>(_ items: [T]) -> T { items[Int(random.next() % UInt64(items.count))] }
        func someNames() -> [UnitName] { (0..<(1 + Int(random.next() % 3))).map { _ in pick(unitNames) } }
        func someSubmissions() -> [UnitSubmission] {
            someNames().map { unit in
                if unit.form == .instance, random.next() % 2 == 0 {
                    return UnitSubmission(name: unit, file: nil, hash: nil, targetState: pick(TargetState.allCases))
                }
                return submission(unit.rawValue, pick(fleetSections), target: unit.form == .template ? .inactive : pick(TargetState.allCases))
            }
        }
        switch random.next() % 10 {
        case 0: return .submitUnits(someSubmissions())
        case 1: return .replaceUnitFiles(someSubmissions())
        case 2: return .setTargetState(someNames(), pick(TargetState.allCases))
        case 3: return .destroyUnits(someNames())
        case 4: return .assign(someNames().map { Assignment(unit: $0, machine: pick(machines)) })
        case 5: return .unassign(someNames())
        case 6: return .setMachineMetadata(pick(machines), [MetadataEntry(key: "disk", value: pick(["ssd", "hdd"]))])
        case 7: return .drainMachine(pick(machines))
        case 8: return .putUnit(someSubmissions()[0], targetGiven: random.next() % 2 == 0)
        default: return .undrainMachine(pick(machines))
        }
    }

    @Test func replicasApplyingTheSameLogAgreeAndASnapshotJoinerCatchesUp() throws {
        var random = SplitMix64(seed: 2026)
        var log: [RegistryCommand] = []
        for _ in 0..<300 {
            let stamp = random.next() % 3 == 0 ? ClientStamp(clientID: random.next() % 4, sequence: random.next() % 6) : nil
            log.append(RegistryCommand(Self.randomOperation(&random), stamp: stamp))
        }
        var first = RegistryState(), second = RegistryState(), joiner = RegistryState()
        var appliedCount = 0
        for (offset, command) in log.enumerated() {
            let index = UInt64(offset + 1)
            let result = first.apply(command, at: index)
            #expect(second.apply(command, at: index) == result, "index \(index)")
            if case .applied = result { appliedCount += 1 }
            if offset == 150 { try joiner.restore(from: first.snapshot()) }
            if offset > 150 { #expect(joiner.apply(command, at: index) == result, "joiner at index \(index)") }
        }
        #expect(first.snapshot() == second.snapshot())
        #expect(joiner.snapshot() == first.snapshot())
        #expect(first == joiner)
        // The pools are small on purpose; make sure the log still did things.
        #expect(appliedCount > 60)
    }
}
