import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// How a dedicated thread competes for the cores.
public enum DedicatedThreadPriority: Sendable {
    /// As every other thread: for a thread that mostly waits (on a child process, a lock).
    case normal
    /// Nice 10 (`lowerThisThreadsPriority`): for minutes of CPU-bound simulation.
    case background
}

/// Runs `body` on a thread of its own and resumes with its result.
///
/// Why: `swift test` runs every suite at once on Swift's cooperative pool, which has one thread
/// per core (two on CI). A CPU-bound simulation run there holds a pool thread for as long as it
/// computes, and every async test of every other suite waits for a thread: on CI a plain HTTP
/// request sat 90 s between its connect and its write and the server's idle timeout closed it.
/// On a thread of its own the work is time-sliced by the kernel like any other, and the pool stays
/// free for the tests that wait on I/O and deadlines.
public func onDedicatedThread<Value: Sendable>(_ priority: DedicatedThreadPriority = .normal,
                                               _ body: @escaping @Sendable () throws -> Value) async throws -> Value {
    try await withCheckedThrowingContinuation { continuation in
        startThread(priority) { continuation.resume(with: Result { try body() }) }
    }
}

/// `onDedicatedThread` for work that cannot throw.
public func onDedicatedThread<Value: Sendable>(_ priority: DedicatedThreadPriority = .normal,
                                               _ body: @escaping @Sendable () -> Value) async -> Value {
    await withCheckedContinuation { continuation in
        startThread(priority) { continuation.resume(returning: body()) }
    }
}

private func startThread(_ priority: DedicatedThreadPriority, _ body: @escaping @Sendable () -> Void) {
    let thread = Thread {
        if priority == .background { lowerThisThreadsPriority() }
        body()
    }
    // Simulations recurse through deep value types; the 512 KiB default of secondary threads
    // is not enough for them in debug builds.
    thread.stackSize = 8 << 20
    thread.start()
}

/// Sets the calling thread's nice value to 10.
///
/// Why: the six Raft simulation shards, the membership and lease simulations and hundreds of
/// computing tests run at once on a two-core host, beside suites whose servers and clients keep
/// real deadlines (head and idle timeouts, lease expiry, sd-bus timeouts). At equal priority each
/// of those threads got a small share of the cores; at nice 10 (a ninth of the weight) the kernel runs them first
/// whenever they are ready, and the computing tests still get every cycle no one else wants, so
/// the suite's wall time barely moves. On Linux the nice value belongs to each thread and
/// `who = 0` names the calling one; failing to lower it costs the other suites only latency.
public func lowerThisThreadsPriority() {
    #if canImport(Glibc)
    _ = setpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0, 10)
    #endif
}
