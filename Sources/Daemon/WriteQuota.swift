import Foundation
import HTTPAPI
import Registry
import UnitFile

/// The operator's quotas (`max_units`, `max_unit_file_bytes`, `max_registry_bytes`) and the
/// NOSPACE alarm, checked by the leader before it proposes a user's write.
///
/// The check runs at the API, not in the registry's apply: quotas are each machine's own
/// settings, and a rule applied inside the log must be the same on every voter, or their
/// registries diverge. Two writes racing past the check can overshoot a quota by one batch; the
/// hard limits the registry applies (`RegistryLimits.standard`) still hold. As in etcd, only
/// writes that add data are refused: target-state changes, deletes, drains and the keyring go
/// on, so the cluster keeps running what it has and the operator can make room.
struct WriteQuota: Sendable, Equatable {
    let unitsMax: Int
    let unitFileBytesMax: Int
    let registryBytesMax: Int

    /// HTTP 507 Insufficient Storage, in fleet's error shape, as etcd answers NOSPACE.
    static let status = 507

    init(unitsMax: Int, unitFileBytesMax: Int, registryBytesMax: Int) {
        self.unitsMax = unitsMax
        self.unitFileBytesMax = unitFileBytesMax
        self.registryBytesMax = registryBytesMax
    }

    init(_ configuration: DaemonConfiguration) {
        self.init(unitsMax: configuration.unitsMax, unitFileBytesMax: configuration.unitFileBytesMax,
                  registryBytesMax: configuration.registryBytesMax)
    }

    /// A refused write: the API error and which counter it goes to.
    struct Refusal: Error, Equatable {
        enum Reason: Equatable { case noSpace, quota }
        let reason: Reason
        let error: APIError
    }

    /// Why `operation` may not be proposed against `state`, or nil when it may.
    func refusal(of operation: RegistryOperation, in state: RegistryState) -> Refusal? {
        switch operation {
        case .submitUnits(let submissions), .replaceUnitFiles(let submissions):
            if let alarm = Self.alarmRefusal(state) { return alarm }
            return unitRefusal(submissions, in: state)
        case .putUnit(let submission, _):
            // A change of target alone adds no data: allowed under the alarm, as setTargetState.
            guard submission.file != nil || (state.units[submission.name] == nil && state.templates[submission.name] == nil) else {
                return nil
            }
            if let alarm = Self.alarmRefusal(state) { return alarm }
            return unitRefusal([submission], in: state)
        case .setMachineMetadata, .createACLToken:
            return Self.alarmRefusal(state)
        case .setTargetState, .destroyUnits, .assign, .unassign, .drainMachine, .undrainMachine, .revokeLease,
             .advanceLease, .setGossipKeyring, .deleteACLToken, .setNoSpaceAlarm:
            return nil
        }
    }

    static func alarmRefusal(_ state: RegistryState) -> Refusal? {
        guard !state.noSpaceAlarms.isEmpty else { return nil }
        let machines = state.noSpaceAlarms.sorted().map(\.rawValue).joined(separator: ", ")
        return Refusal(reason: .noSpace, error: APIError(
            status: status, message: "NOSPACE alarm: the data directory of \(machines) is short of free space; "
                + "the cluster refuses writes that add data until space is freed (reads, stops and deletes go on)"))
    }

    private func unitRefusal(_ submissions: [UnitSubmission], in state: RegistryState) -> Refusal? {
        func quota(_ message: String) -> Refusal { Refusal(reason: .quota, error: APIError(status: Self.status, message: "quota: " + message)) }
        var added = 0
        var bytesDelta = 0
        for submission in submissions {
            let name = submission.name
            let fileBytes = submission.file?.count
                ?? (try? name.template).flatMap { state.templates[$0]?.file.count } ?? 0
            if fileBytes > unitFileBytesMax {
                return quota("the file of \(name) is \(fileBytes) bytes, max_unit_file_bytes is \(unitFileBytesMax)")
            }
            if let existingBytes = state.units[name]?.file.count ?? state.templates[name]?.file.count {
                bytesDelta += fileBytes - existingBytes
            } else {
                added += 1
                bytesDelta += fileBytes + name.rawValue.utf8.count
            }
        }
        let count = state.units.count + state.templates.count
        if added > 0, count + added > unitsMax {
            return quota("the cluster holds \(count) units, max_units is \(unitsMax)")
        }
        let bytes = state.unitFileBytes
        if bytesDelta > 0, bytes + bytesDelta > registryBytesMax {
            return quota("the unit files would take \(bytes + bytesDelta) bytes, max_registry_bytes is \(registryBytesMax)")
        }
        return nil
    }
}
