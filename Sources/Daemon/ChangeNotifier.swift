import Locking

/// Wakes the tasks waiting for "something changed" (a new registry version, new unit states),
/// for the API's long polls: agents following their schedule and `watch`ers. A waiter gives up
/// after its own timeout; the number of waiters is bounded so a flood of long polls cannot grow
/// memory without limit (past the bound, a waiter returns at once and the client polls again).
final class ChangeNotifier: Sendable {
    private struct State {
        var nextID: UInt64 = 0
        var waiters: [UInt64: CheckedContinuation<Void, Never>] = [:]
        /// Waits whose wake-up came before their continuation was registered (the sleeper or a
        /// notification won the race): registering one of these resumes at once.
        var fired: Set<UInt64> = []
    }
    private let state = Locked(State())
    let waitersMax: Int

    init(waitersMax: Int = 16_384) {
        precondition(waitersMax > 0, "waitersMax must be positive")
        self.waitersMax = waitersMax
    }

    /// Wakes every current waiter.
    func notifyAll() {
        let woken = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            defer { state.waiters.removeAll(keepingCapacity: true) }
            return Array(state.waiters.values)
        }
        for continuation in woken { continuation.resume() }
    }

    /// Returns when `isSatisfied()` holds, or after `timeoutMilliseconds`, whichever is first.
    /// The condition is checked under the same lock `notifyAll` takes, after registering, so a
    /// change between the check and the wait is never missed.
    func wait(timeoutMilliseconds: Int, until isSatisfied: @escaping @Sendable () -> Bool) async {
        let deadline = ContinuousClock.now + .milliseconds(timeoutMilliseconds)
        while !isSatisfied(), ContinuousClock.now < deadline, !Task.isCancelled {
            await waitOnce(until: deadline, isSatisfied: isSatisfied)
        }
    }

    private func waitOnce(until deadline: ContinuousClock.Instant, isSatisfied: @escaping @Sendable () -> Bool) async {
        let id = state.withLock { state -> UInt64 in
            state.nextID += 1
            return state.nextID
        }
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                await withCheckedContinuation { continuation in
                    let registered = self.state.withLock { state -> Bool in
                        guard state.waiters.count < self.waitersMax, state.fired.remove(id) == nil else { return false }
                        state.waiters[id] = continuation
                        return true
                    }
                    if !registered {
                        continuation.resume()
                    } else if isSatisfied() {
                        self.resume(id, orDirectly: nil)
                    }
                }
            }
            group.addTask {
                try? await Task.sleep(until: deadline, clock: .continuous)
                self.resume(id, orDirectly: nil)
            }
            await group.next()
            group.cancelAll()
            // The sleeper ends on cancellation; the waiter is resumed here if it still waits.
            self.resume(id, orDirectly: nil)
        }
        state.withLock { _ = $0.fired.remove(id) }
    }

    private func resume(_ id: UInt64, orDirectly direct: CheckedContinuation<Void, Never>?) {
        if let direct {
            direct.resume()
            return
        }
        let continuation = state.withLock { state -> CheckedContinuation<Void, Never>? in
            if let continuation = state.waiters.removeValue(forKey: id) { return continuation }
            state.fired.insert(id)
            return nil
        }
        continuation?.resume()
    }
}
