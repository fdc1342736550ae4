import Foundation
import Testing

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
    public static let shared = OwnThreadExecutor(name: "own-thread-tests", threadsMax: 256, priority: .normal)

    /// The computing tests' threads (`.onBackgroundThreads`): one per core, at lowered priority
    /// (`lowerThisThreadsPriority`). Bounded: more would not compute faster, and a test that only
    /// computes never waits on another, so a job queued behind busy threads always runs.
    public static let background = OwnThreadExecutor(
        name: "background-tests", threadsMax: max(2, ProcessInfo.processInfo.activeProcessorCount), priority: .background)

    private let condition = NSCondition()
    /// Jobs not yet taken by a thread.
    private var jobs: [UnownedJob] = []
    private var threadCount = 0
    /// Threads waiting for a job: each queued job needs one, or a new thread.
    private var waitingCount = 0

    private let name: String
    /// For `shared`, a bound against a runaway test, far above the tests that block at once.
    private let threadsMax: Int
    private let priority: DedicatedThreadPriority

    private init(name: String, threadsMax: Int, priority: DedicatedThreadPriority) {
        self.name = name
        self.threadsMax = threadsMax
        self.priority = priority
    }

    public func enqueue(_ job: consuming ExecutorJob) {
        let unowned = UnownedJob(job)
        condition.lock()
        jobs.append(unowned)
        if jobs.count > waitingCount && threadCount < threadsMax {
            threadCount += 1
            let thread = Thread { [unowned self] in
                if self.priority == .background { lowerThisThreadsPriority() }
                self.run()
            }
            thread.stackSize = 8 << 20
            thread.name = "\(name)-\(threadCount)"
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

/// A suite trait for suites that only compute: their tests run on `OwnThreadExecutor.background`,
/// not on the cooperative pool.
///
/// Why: swift-testing runs synchronous tests on the cooperative pool, one thread per core. The
/// several hundred tests that compute (hashing, parsing, random codecs, Raft and scheduling rounds,
/// WAL recovery at every offset) held both threads for the first 25 s of every run, and
/// everything else that needs the pool waited: the servers that async tests start hand each
/// request to a task, so an HTTPS test connected, then got no answer for 25 s, and its client's
/// timeout or the server's head deadline ended it. These tests keep no deadline of their own, so
/// they lose nothing by running on their own lowered-priority threads, and the pool stays for
/// the tests and servers that wait on I/O.
public struct BackgroundThreadsTrait: SuiteTrait, TestTrait, TestScoping {
    public var isRecursive: Bool { true }

    /// One scope per test case; the suite has no body of its own to move.
    public func scopeProvider(for test: Test, testCase: Test.Case?) -> Self? {
        testCase == nil ? nil : self
    }

    public func provideScope(for test: Test, testCase: Test.Case?, performing function: @Sendable () async throws -> Void) async throws {
        try await withTaskExecutorPreference(OwnThreadExecutor.background) { try await function() }
    }
}

extension Trait where Self == BackgroundThreadsTrait {
    /// Runs the suite's tests on `OwnThreadExecutor.background` (`BackgroundThreadsTrait`).
    public static var onBackgroundThreads: Self { BackgroundThreadsTrait() }
}
