// Does ThreadSanitizer work here? Two threads add to one counter with no lock at all: a sanitizer
// that is on must report a data race. Contrib/sanitize/run thread runs this first and stops if
// nothing is reported, because then its silence on Flotilla would mean nothing.
import Foundation

final class Unguarded: @unchecked Sendable {
    var count = 0
}

let shared = Unguarded()
let finished = DispatchGroup()
for _ in 0..<2 {
    finished.enter()
    Thread {
        for _ in 0..<10_000 { shared.count += 1 }
        finished.leave()
    }.start()
}
finished.wait()
print("count:", shared.count)
