import Foundation
import Registry

/// A voter's NOSPACE decision from its data directory's free space, with hysteresis: raised
/// below the reserve, cleared only at 5/4 of it, so a disk that hovers at the edge does not make
/// the alarm (a Raft write each time) flap.
struct NoSpaceAlarmState: Sendable, Equatable {
    let reserveBytes: Int64
    private(set) var isRaised = false

    init(reserveBytes: Int64) { self.reserveBytes = reserveBytes }

    /// The clearing threshold (a reserve of 0 never raises).
    var clearBytes: Int64 { reserveBytes + reserveBytes / 4 }

    mutating func observe(freeBytes: Int64) {
        if isRaised { isRaised = freeBytes < clearBytes } else { isRaised = freeBytes < reserveBytes }
    }

    /// The bytes available to an unprivileged writer on the file system holding `path`
    /// (statvfs's f_bavail), or nil when it cannot be read.
    static func freeBytes(at path: String) -> Int64? {
        var info = statvfs()
        guard statvfs(path, &info) == 0 else { return nil }
        return Int64(info.f_bavail) * Int64(info.f_frsize)
    }
}

/// The leader's side: which raised alarms to change, from what the voters reported this round
/// (`observed`, machine -> raised; the leader's own included) and which machines are voters.
/// A voter that did not answer keeps its alarm as it is; an alarm of a machine that is no longer
/// a voter and did not report is cleared, so a replaced voter's full disk does not hold the
/// cluster's writes for good. Sorted by machine, so that the proposals' order is deterministic.
enum NoSpaceAlarms {
    static func changes(raised: Set<MachineID>, observed: [MachineID: Bool], voters: Set<MachineID>) -> [(machine: MachineID, raised: Bool)] {
        var changes: [MachineID: Bool] = [:]
        for (machine, isRaised) in observed where raised.contains(machine) != isRaised { changes[machine] = isRaised }
        for machine in raised where observed[machine] == nil && !voters.contains(machine) { changes[machine] = false }
        return changes.keys.sorted().map { ($0, changes[$0]!) }
    }
}
