import Foundation

/// A task executor on threads of its own, for tests that block or measure time.
///
/// Why: `swift test` runs all suites at once on the cooperative pool, one thread per core (two
/// on CI). A test that blocks its thread (the end-to-end tests wait on machines for minutes,
/// synchronously) or computes for long takes a pool thread away from every other suite; with
/// two of them blocked, every async test waited over two minutes and an HTTP test hit its
/// server's idle timeout. Code run under `onOwnThread` runs and resumes on these threads
/// instead, still inside its test's task (so `#expect` and `Issue.record` know their test).
/// Elastic: a job that arrives while every thread is busy gets a new thread. A fixed pool (eight
/// threads) starved: more than eight tests blocked on machines at once, and a test waiting for
/// its 0.5 s sd-bus timeout was resumed 17 s late, after a blocked test freed a thread.
public final class OwnThreadExecutor: TaskExecutor, @unchecked Sendable {
    public static let shared = OwnThreadExecutor()

    private let condition = NSCondition()
    /// Jobs not yet taken by a thread.
    private var jobs: [UnownedJob] = []
    private var threadCount = 0
    /// Threads waiting for a job: each queued job needs one, or a new thread.
    private var waitingCount = 0

    /// A bound against a runaway test, far above the tests that block at once.
    static let threadsMax = 256

    private init() {}

    public func enqueue(_ job: consuming ExecutorJob) {
        let unowned = UnownedJob(job)
        condition.lock()
        jobs.append(unowned)
        if jobs.count > waitingCount && threadCount < Self.threadsMax {
            threadCount += 1
            let thread = Thread { [unowned self] in self.run() }
            thread.name = "own-thread-tests-\(threadCount)"
            thread.start()
        } else {
            condition.signal()
        }
        condition.unlock()
    }

    private func run() {
        while true {
            condition.lock()
            while jobs.isEmpty {
                waitingCount += 1
                condition.wait()
                waitingCount -= 1
            }
            let job = jobs.removeFirst()
            condition.unlock()
            job.runSynchronously(on: asUnownedTaskExecutor())
        }
    }
}

/// Runs `body` with its continuations resumed on `OwnThreadExecutor`, not the shared pool.
public func onOwnThread<T: Sendable>(_ body: () async throws -> T) async rethrows -> T {
    try await withTaskExecutorPreference(OwnThreadExecutor.shared) { try await body() }
}
