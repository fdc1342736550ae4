import Foundation

/// Runs `body` on a thread of its own and resumes with its result.
///
/// Why: `swift test` runs every suite at once on Swift's cooperative pool, which has one thread
/// per core (two on CI). A CPU-bound simulation run there holds a pool thread for as long as it
/// computes, and every async test of every other suite waits for a thread: on CI a plain HTTP
/// request sat 90 s between its connect and its write and the server's idle timeout closed it.
/// On a thread of its own the work is time-sliced by the kernel like any other, and the pool stays
/// free for the tests that wait on I/O and deadlines.
public func onDedicatedThread<Value: Sendable>(_ body: @escaping @Sendable () throws -> Value) async throws -> Value {
    try await withCheckedThrowingContinuation { continuation in
        let thread = Thread { continuation.resume(with: Result { try body() }) }
        // Simulations recurse through deep value types; the 512 KiB default of secondary threads
        // is not enough for them in debug builds.
        thread.stackSize = 8 << 20
        thread.start()
    }
}

/// `onDedicatedThread` for work that cannot throw.
public func onDedicatedThread<Value: Sendable>(_ body: @escaping @Sendable () -> Value) async -> Value {
    await withCheckedContinuation { continuation in
        let thread = Thread { continuation.resume(returning: body()) }
        thread.stackSize = 8 << 20
        thread.start()
    }
}
