import Foundation
import Locking

/// Loopback TCP ports for tests whose server must come back on the same port after a stop, as a
/// daemon with a configured port does.
///
/// They come from below Linux's ephemeral range (32768-60999 by default): a port the kernel hands
/// out (port 0) can be taken while the server is down, as the source port of another test's
/// outgoing connection. Below the range only explicit binds take ports, and every test in this
/// process that binds one explicitly gets it here, so no two of them are handed the same port: a
/// port that was merely free when a second test looked would be taken by it while the first one's
/// server is down, and the restart would fail with EADDRINUSE (seen on a fresh-clone run).
public enum LoopbackPorts {
    static let range = 20_000..<32_000
    static let attemptsMax = 200
    private static let handedOut = Locked<Set<Int>>([])

    public struct NoFreePort: Error, CustomStringConvertible {
        public var description: String { "no free loopback port in \(LoopbackPorts.range) after \(LoopbackPorts.attemptsMax) tries" }
    }

    /// A port that is free now and that no other caller in this process was or will be given.
    public static func reserve() throws -> Int {
        for _ in 0..<attemptsMax {
            let port = Int.random(in: range)
            let fresh = handedOut.withLock { ports in ports.insert(port).inserted }
            guard fresh else { continue }
            // Another process may hold it; then it stays marked, and we try another.
            if isBindable(port) { return port }
        }
        throw NoFreePort()
    }

    static func isBindable(_ port: Int) -> Bool {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { return false }
        defer { close(descriptor) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        return bound == 0
    }
}
