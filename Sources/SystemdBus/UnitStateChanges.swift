import Locking

/// The stream of watched units' states that `SystemdManager` produces and one agent consumes.
///
/// Bounded by coalescing rather than by dropping: it holds at most one pending element per unit
/// (so at most `watchedUnitsMax`), and a newer state of a unit replaces the pending older one in
/// place. A slow consumer therefore never loses a unit's latest state, only intermediate ones
/// (e.g. `activating` between `inactive` and `active`), which is what a reconciler needs.
/// Units are delivered in the order they first became pending.
///
/// Single consumer: iterating it from two tasks at once is a programmer error.
public final class UnitStateChanges: AsyncSequence, Sendable {
    public typealias Element = UnitStateChange

    private struct State {
        var pending: [UnitName: UnitState] = [:]
        var order: [UnitName] = []
        var orderHead = 0
        var waiter: CheckedContinuation<UnitStateChange?, Never>?
        var finished = false
    }

    private let state = Locked(State())

    init() {}

    /// Publishes the latest state of `unit`, replacing a pending one.
    func publish(_ change: UnitStateChange) {
        let waiter: CheckedContinuation<UnitStateChange?, Never>? = state.withLock { state in
            if state.finished { return nil }
            if let waiter = state.waiter {
                precondition(state.pending.isEmpty, "a consumer waits while elements are pending")
                state.waiter = nil
                return waiter
            }
            if state.pending.updateValue(change.state, forKey: change.unit) == nil {
                state.order.append(change.unit)
            }
            return nil
        }
        waiter?.resume(returning: change)
    }

    /// Ends the stream; the consumer gets what is pending, then nil.
    func finish() {
        let waiter = state.withLock { state in
            state.finished = true
            let waiter = state.waiter
            state.waiter = nil
            return waiter
        }
        waiter?.resume(returning: nil)
    }

    /// Elements waiting for the consumer.
    public var pendingCount: Int { state.withLock { $0.pending.count } }

    private func takeNext(_ state: inout State) -> UnitStateChange? {
        while state.orderHead < state.order.count {
            let unit = state.order[state.orderHead]
            state.orderHead += 1
            if let unitState = state.pending.removeValue(forKey: unit) {
                compact(&state)
                return UnitStateChange(unit: unit, state: unitState)
            }
        }
        compact(&state)
        return nil
    }

    private func compact(_ state: inout State) {
        if state.orderHead == state.order.count {
            state.order.removeAll(keepingCapacity: true)
            state.orderHead = 0
        } else if state.orderHead > 1024 && state.orderHead * 2 > state.order.count {
            state.order.removeFirst(state.orderHead)
            state.orderHead = 0
        }
    }

    func next() async -> UnitStateChange? {
        if let ready = state.withLock({ state in takeNext(&state) }) { return ready }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<UnitStateChange?, Never>) in
                let immediate: UnitStateChange?? = state.withLock { state in
                    if let ready = takeNext(&state) { return .some(ready) }
                    if state.finished || Task.isCancelled { return .some(nil) }
                    precondition(state.waiter == nil, "UnitStateChanges has a single consumer")
                    state.waiter = continuation
                    return .none
                }
                if let immediate { continuation.resume(returning: immediate) }
            }
        } onCancel: {
            let waiter = state.withLock { state in
                let waiter = state.waiter
                state.waiter = nil
                return waiter
            }
            waiter?.resume(returning: nil)
        }
    }

    public struct AsyncIterator: AsyncIteratorProtocol {
        let stream: UnitStateChanges
        public mutating func next() async -> UnitStateChange? { await stream.next() }
    }

    public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(stream: self) }
}
