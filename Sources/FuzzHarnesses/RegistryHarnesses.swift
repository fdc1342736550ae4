import Registry
import UnitFile

enum RegistryHarnesses {
    /// A registry with a little of everything, for commands to land on.
    static let populated: RegistryState = {
        var state = RegistryState()
        func submit(_ name: String, _ text: String, _ target: TargetState) {
            guard let unitName = try? UnitName(name), let file = try? UnitFile(parsing: text) else { fatalError("harness unit \(name) is invalid") }
            _ = state.apply(RegistryCommand(.submitUnits([UnitSubmission(name: unitName, unitFile: file, targetState: target)])),
                            at: state.version + 1)
        }
        submit("web.service", "[Service]\nExecStart=/bin/true\n[X-Fleet]\nConflicts=web*\n", .launched)
        submit("app@.service", "[Service]\nExecStart=/bin/true\n", .inactive)
        submit("g.service", "[Service]\nExecStart=/bin/true\n[X-Fleet]\nGlobal=true\n", .launched)
        guard let m1 = try? MachineID("m1"), let web = try? UnitName("web.service") else { fatalError("harness names are invalid") }
        _ = state.apply(RegistryCommand(.assign([Assignment(unit: web, machine: m1)])), at: state.version + 1)
        _ = state.apply(RegistryCommand(.setMachineMetadata(m1, [MetadataEntry(key: "disk", value: "ssd")])), at: state.version + 1)
        _ = state.apply(RegistryCommand(.setNoSpaceAlarm(m1, raised: true)), at: state.version + 1)
        return state
    }()

    static func command(_ bytes: [UInt8]) {
        guard let command = try? RegistryCommand.decode(bytes) else { return }
        guard let again = try? RegistryCommand.decode(command.encoded()) else { fatalError("a decoded command did not decode once re-encoded") }
        require(again == command, "the round trip changed the command")
        // Applied twice at increasing indexes, as a retried stamped command would be; replicas
        // that apply the same commands must hold equal states.
        var one = populated
        var other = populated
        let first = one.apply(command, at: one.version + 1)
        _ = one.apply(command, at: one.version + 1)
        let otherFirst = other.apply(command, at: other.version + 1)
        _ = other.apply(command, at: other.version + 1)
        require(first == otherFirst && one == other, "two replicas applying the same command diverged")
        require(one.snapshot() == other.snapshot(), "equal states gave different snapshots")
    }

    static func snapshot(_ bytes: [UInt8]) {
        var state = RegistryState()
        guard (try? state.restore(from: bytes)) != nil else {
            require(state == RegistryState(), "a refused snapshot changed the state")
            return
        }
        // Formats before the current one restore into the current one; the current format is
        // canonical: one state, one byte string.
        let encoded = state.snapshot()
        if bytes.count > 5, bytes[4] == UInt8(truncatingIfNeeded: RegistryState.snapshotFormatVersion), bytes[5] == 0 {
            require(encoded == bytes, "a restored snapshot did not encode back to its own bytes")
        }
        var again = RegistryState()
        guard (try? again.restore(from: encoded)) != nil else { fatalError("a state's own snapshot did not restore") }
        require(again == state, "the snapshot round trip changed the state")
    }
}
