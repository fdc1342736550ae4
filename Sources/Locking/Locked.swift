import NIOConcurrencyHelpers

/// A value that threads share, reached only under its lock.
///
/// Used instead of the standard library's `Synchronization.Mutex` for one reason: ThreadSanitizer.
/// `Mutex` on Linux takes its lock with atomics and futex calls inside the prebuilt standard
/// library, which TSan does not see, so with Swift 6.3.1 every access under a `Mutex` is reported
/// as a race (`Contrib/sanitize/mutex-probe.swift`) and a TSan run says nothing true. This lock is
/// swift-nio's `NIOLock`, a pthread mutex, whose lock and unlock TSan intercepts: its reports are
/// real ones. The cost is the same kind of uncontended lock, behind one more pointer.
public final class Locked<Value>: @unchecked Sendable {
    // @unchecked: `value` is only touched inside `lock`; that is what this class is for. Values
    // that are not Sendable are allowed (as with `Mutex`) because they never leave the lock
    // except as what `body` returns.
    // @usableFromInline: so that `withLock` inlines and specializes in the modules that call it
    // (the Raft inbox takes this lock for every message).
    @usableFromInline let lock = NIOLock()
    @usableFromInline var value: Value

    public init(_ value: Value) {
        self.value = value
    }

    /// Runs `body` with the value, holding the lock; nothing else reaches the value meanwhile.
    @inlinable
    public func withLock<Result>(_ body: (inout Value) throws -> Result) rethrows -> Result {
        try lock.withLock { try body(&value) }
    }
}
