import CSystemd
import Locking
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// What the event loop polls and processes besides its job queue. Called only on the loop
/// thread; the implementer (SystemdManager) asserts its isolation there.
protocol BusPollSource: AnyObject {
    /// The fd to poll, the events to wait for, and the timeout in ms (-1: none), or nil when there
    /// is no connection.
    func pollDescriptor() -> (fd: Int32, events: Int16, timeoutMilliseconds: Int32)?
    /// Dispatches pending bus work; returns true when there may be more.
    func processBus() -> Bool
}

/// A dedicated thread that is both the serial executor of a `SystemdManager` and the thread that
/// drives its sd-bus connection.
///
/// Why: an sd-bus connection is not thread-safe, and sd-bus calls back into Swift from
/// `sd_bus_process`. With the actor's jobs and `sd_bus_process` on the same thread, every
/// libsystemd call and every callback runs with the actor's isolation, and nothing needs a lock.
/// The thread sleeps in `poll` on the bus fd and an eventfd that `enqueue` writes to, so an idle
/// connection costs no CPU (fleet woke up every second to poll systemd).
///
/// Ordering contract: jobs run in FIFO order; between two batches of jobs the loop processes at
/// most `processBatchMessagesMax` bus messages, so neither side starves the other.
final class BusEventLoop: SerialExecutor, @unchecked Sendable {
    private let queue = Locked<[UnownedJob]>([])
    private let wakeFD: Int32
    private let threadID = Atomic<UInt>(0)
    private let stopRequested = Atomic<Bool>(false)
    /// Read and written only on the loop thread (`setSource` asserts it).
    private weak var source: (any BusPollSource)?

    init(name: String) {
        let fd = eventfd(0, Int32(EFD_CLOEXEC | EFD_NONBLOCK))
        precondition(fd >= 0, "eventfd failed: \(errnoName(errno))")
        wakeFD = fd
        let box = Unmanaged.passRetained(self)
        var attributes = pthread_attr_t()
        pthread_attr_init(&attributes)
        defer { pthread_attr_destroy(&attributes) }
        var thread = pthread_t()
        let rc = pthread_create(&thread, &attributes, { raw in
            let loop = Unmanaged<BusEventLoop>.fromOpaque(raw!).takeRetainedValue()
            loop.run()
            return nil
        }, box.toOpaque())
        precondition(rc == 0, "pthread_create failed: \(errnoName(rc))")
        pthread_detach(thread)
        // Wait until the thread has published its id, so isolation checks are exact from here on.
        while threadID.load(ordering: .acquiring) == 0 { sched_yield() }
        _ = name
    }

    deinit {
        close(wakeFD)
    }

    var isOnLoopThread: Bool { pthread_self() == threadID.load(ordering: .acquiring) }

    func setSource(_ newSource: (any BusPollSource)?) {
        precondition(isOnLoopThread, "setSource must be called on the bus event loop thread")
        source = newSource
    }

    /// Ends the loop after the jobs already queued. Jobs enqueued later never run, so call this
    /// only when no actor that uses this executor can receive work any more.
    func shutdown() {
        stopRequested.store(true, ordering: .releasing)
        wake()
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let unowned = UnownedJob(job)
        queue.withLock { $0.append(unowned) }
        // A job enqueued from the loop thread itself (a continuation resumed inside a bus
        // callback) is picked up before the loop polls again, so it needs no wakeup syscall.
        if !isOnLoopThread { wake() }
    }

    func asUnownedSerialExecutor() -> UnownedSerialExecutor {
        UnownedSerialExecutor(ordinary: self)
    }

    func checkIsolated() {
        precondition(isOnLoopThread, "not on the SystemdBus event loop thread")
    }

    func isSameExclusiveExecutionContext(other: BusEventLoop) -> Bool { self === other }

    private func wake() {
        var one: UInt64 = 1
        _ = withUnsafeBytes(of: &one) { write(wakeFD, $0.baseAddress, 8) }
    }

    private func drainWakeups() {
        var value: UInt64 = 0
        _ = withUnsafeMutableBytes(of: &value) { read(wakeFD, $0.baseAddress, 8) }
    }

    private func run() {
        threadID.store(pthread_self(), ordering: .releasing)
        while true {
            let batch = queue.withLock { jobs in
                let taken = jobs
                jobs.removeAll(keepingCapacity: true)
                return taken
            }
            for job in batch { job.runSynchronously(on: asUnownedSerialExecutor()) }

            let mayHaveMore = source?.processBus() ?? false
            let jobsPending = queue.withLock { !$0.isEmpty }
            if jobsPending || mayHaveMore { continue }
            if stopRequested.load(ordering: .acquiring) { break }
            pollOnce()
        }
        source = nil
    }

    private func pollOnce() {
        var fds = [pollfd(fd: wakeFD, events: Int16(POLLIN), revents: 0)]
        var timeoutMilliseconds: Int32 = -1
        if let descriptor = source?.pollDescriptor() {
            fds.append(pollfd(fd: descriptor.fd, events: descriptor.events, revents: 0))
            timeoutMilliseconds = descriptor.timeoutMilliseconds
        }
        let rc = poll(&fds, nfds_t(fds.count), timeoutMilliseconds)
        if rc < 0 && errno != EINTR {
            preconditionFailure("poll failed: \(errnoName(errno))")
        }
        if fds[0].revents & Int16(POLLIN) != 0 { drainWakeups() }
    }
}
