import Logging
import Raft
import Registry
import Locking

/// The replicated registry on one voter: `apply` runs on the Raft replica's loop in log order;
/// readers anywhere take a copy (copy-on-write: a copy costs nothing until the next apply).
/// Waiters for a newer version (agents' long polls, watchers) are woken on every applied change.
final class RegistryStore: Sendable {
    private let state: Locked<RegistryState>
    let changes = ChangeNotifier()
    let limits: RegistryLimits
    private let logger: Logger
    /// Called after each applied command that changed something, with the command (for events).
    private let onChange: @Sendable (RegistryCommand, RegistryState) -> Void

    init(limits: RegistryLimits = .standard, logger: Logger, onChange: @escaping @Sendable (RegistryCommand, RegistryState) -> Void) {
        self.state = Locked(RegistryState(limits: limits))
        self.limits = limits
        self.logger = logger
        self.onChange = onChange
    }

    var current: RegistryState { state.withLock { $0 } }
    var version: UInt64 { state.withLock { $0.version } }

    /// Applies one committed entry; the answer goes back to its proposer.
    ///
    /// Entries that are not commands (the leader's no-op, membership changes) change nothing
    /// here; the version is the index of the last applied command. A command that
    /// cannot be decoded was written by a newer or broken binary: applying nothing is the only
    /// choice that keeps replicas identical (every replica decodes the same bytes the same way),
    /// and it is logged as the critical condition it is.
    func apply(_ entry: Entry) -> [UInt8] {
        guard case .command(let data, _) = entry.payload else { return [] }
        let command: RegistryCommand
        do {
            command = try RegistryCommand.decode(data, limits: limits)
        } catch {
            logger.critical("undecodable registry command in the log", metadata: ["index": "\(entry.index)", "error": "\(error)"])
            return []
        }
        let (result, snapshot) = state.withLock { state -> (RegistryResult, RegistryState) in
            let result = state.apply(command, at: entry.index)
            return (result, state)
        }
        if case .applied(let changed) = result, changed > 0 { onChange(command, snapshot) }
        changes.notifyAll()
        return result.encoded()
    }

    /// Replaces the registry with a snapshot's, or throws and leaves it as it was; the replica then
    /// stops (`ReplicaFailure.snapshotNotRestored`) and so does the daemon, since the entries after
    /// the snapshot would apply to a registry that misses what it holds.
    func restore(_ bytes: [UInt8]) throws {
        var restored = RegistryState(limits: limits)
        try restored.restore(from: bytes)
        state.withLock { $0 = restored }
        changes.notifyAll()
    }

    func snapshot() -> [UInt8] { state.withLock { $0.snapshot() } }

    /// Waits until the registry passes `version` or the wait ends; returns the registry then.
    func waitForVersion(after version: UInt64, timeoutMilliseconds: Int) async -> RegistryState {
        await changes.wait(timeoutMilliseconds: timeoutMilliseconds) { self.version > version }
        return current
    }
}
