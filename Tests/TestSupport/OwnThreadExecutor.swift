import Foundation

/// A task executor on threads of its own, for tests that block or measure time.
///
/// Why: `swift test` runs all suites at once on the cooperative pool, one thread per core (two
/// on CI). A test that blocks its thread (the end-to-end tests wait on machines for minutes,
/// synchronously) or computes for long takes a pool thread away from every other suite; with
/// two of them blocked, every async test waited over two minutes and an HTTP test hit its
/// server's idle timeout. Code run under `onOwnThread` runs and resumes on these threads
/// instead, still inside its test's task (so `#expect` and `Issue.record` know their test).
/// Several threads, because several such tests run in parallel.
public final class OwnThreadExecutor: TaskExecutor, @unchecked Sendable {
    public static let shared = OwnThreadExecutor()

    private let condition = NSCondition()
    private var jobs: [UnownedJob] = []

    static let threadCount = 8

    private init() {
        for index in 0..<OwnThreadExecutor.threadCount {
            let thread = Thread { [unowned self] in self.run() }
            thread.name = "own-thread-tests-\(index)"
            thread.start()
        }
    }

    public func enqueue(_ job: consuming ExecutorJob) {
        let unowned = UnownedJob(job)
        condition.lock()
        jobs.append(unowned)
        condition.signal()
        condition.unlock()
    }

    private func run() {
        while true {
            condition.lock()
            while jobs.isEmpty { condition.wait() }
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
