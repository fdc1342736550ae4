// Does this toolchain's ThreadSanitizer see Synchronization.Mutex? Four threads update one
// dictionary, only ever under the Mutex: a sanitizer that understands the lock reports nothing.
// On Swift 6.3.1 for Linux it reports a "Swift access race" on the first pair of accesses (the
// Mutex's futex word is handled by code TSan does not see), which is why the shells share state
// under Locking.Locked (a pthread mutex) instead. Contrib/sanitize/run thread runs this and says
// whether it still reports: once a toolchain's TSan sees Mutex, Locked can go.
import Foundation
import Synchronization

final class Shared: Sendable {
    let counts = Mutex([Int: Int]())
    let finishedThreads = Mutex(0)
}

let shared = Shared()
let threads = (0..<4).map { thread in
    Thread {
        for step in 0..<2_000 { shared.counts.withLock { $0[step % 64, default: 0] += thread } }
        shared.finishedThreads.withLock { $0 += 1 }
    }
}
threads.forEach { $0.start() }
while shared.finishedThreads.withLock({ $0 }) < threads.count { Thread.sleep(forTimeInterval: 0.01) }
print("keys:", shared.counts.withLock { $0.count })
