import Dispatch
import Foundation
import NIOCore
import NIOPosix
import Locking
import Testing
@testable import Daemon

/// A real NIO event loop, really held: what a write or fsync that never returns does to the
/// Raft loop.
@Suite(.onBackgroundThreads) struct LoopStallWatchTests {
    @Test func aHeldLoopIsAStallAndAFreeOneIsNot() throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        defer { try? group.syncShutdownGracefully() }
        let loop = group.next()

        // Free: a watch that may wait 10 s per task, over a dozen checks, reports nothing.
        let reports = Locked<[LoopStalled]>([])
        let free = LoopStallWatch(limit: .seconds(10), interval: .milliseconds(20), step: .milliseconds(10))
        free.start(watching: loop) { stall in reports.withLock { $0.append(stall) } }
        Thread.sleep(forTimeInterval: 0.3)
        free.stop()

        // Held until the test lets go: the watch reports the stall while the loop is still held.
        let release = DispatchSemaphore(value: 0)
        loop.execute { release.wait() }
        let stall = LoopStallWatch(limit: .milliseconds(300), interval: .milliseconds(20), step: .milliseconds(10)).firstStall(of: loop)
        release.signal()
        let waited = try #require(stall).waited
        #expect(waited >= .milliseconds(300), "\(waited)")
        #expect(try #require(stall).description.contains("a hung disk?"))

        // A stopped watch ends without a report and asks the loop nothing more.
        let stopped = LoopStallWatch(limit: .milliseconds(300))
        stopped.stop()
        #expect(stopped.firstStall(of: loop) == nil)
        Thread.sleep(forTimeInterval: 0.2)
        #expect(reports.withLock { $0.isEmpty }, "the free loop was reported: \(reports.withLock { $0 })")
    }

    @Test func theLimitIsASettingBetweenASecondAndAnHour() throws {
        #expect(DaemonConfiguration().diskStallLimitMilliseconds == 60_000)
        var configuration = DaemonConfiguration()
        try configuration.set("disk_stall_limit", "2s", source: "test")
        #expect(configuration.diskStallLimitMilliseconds == 2_000)
        #expect(configuration.value(of: "disk_stall_limit") == "2s")
        for refused in ["500ms", "2h", "soon"] {
            #expect(throws: ConfigurationError.self, "\(refused)") {
                var configuration = DaemonConfiguration()
                try configuration.set("disk_stall_limit", refused, source: "test")
            }
        }
    }
}
