import Foundation

/// A task executor on threads of its own, for tests that measure time.
///
/// Why: `swift test` runs all suites at once, and CPU-bound suites (the Raft simulation) can
/// keep the cooperative pool's threads (one per core) busy for minutes. A test whose task waits
/// for a pool thread then measures the pool, not SystemdBus. Code run under
/// `withTaskExecutorPreference(OwnThreadExecutor.shared)` resumes on these threads instead.
/// Several threads, because some test steps block (running Contrib/testbed) and tests run in
/// parallel.
final class OwnThreadExecutor: TaskExecutor, @unchecked Sendable {
    static let shared = OwnThreadExecutor()

    private let condition = NSCondition()
    private var jobs: [UnownedJob] = []

    static let threadCount = 4

    private init() {
        for index in 0..<OwnThreadExecutor.threadCount {
            let thread = Thread { [unowned self] in self.run() }
            thread.name = "sdbus-tests-\(index)"
            thread.start()
        }
    }

    func enqueue(_ job: consuming ExecutorJob) {
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
func onOwnThread<T: Sendable>(_ body: () async throws -> T) async rethrows -> T {
    try await withTaskExecutorPreference(OwnThreadExecutor.shared) { try await body() }
}
