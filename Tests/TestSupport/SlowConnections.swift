#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Locking
import Synchronization

/// A slowloris from this host: holds `count` TCP connections to `host:port`, sends one byte on
/// each every `interval` (a byte of a TLS ClientHello, `0x16`, which never completes), and
/// reopens at once every connection the server closes, so the server always faces `count`.
/// Plain sockets on a thread of its own, so that nothing else in the test waits behind it.
public final class SlowConnections: Sendable {
    public struct Target: Sendable {
        public var host: String
        public var port: UInt16
        public var count: Int
        public init(host: String, port: UInt16, count: Int) {
            self.host = host
            self.port = port
            self.count = count
        }
    }

    public struct Tally: Sendable, CustomStringConvertible {
        /// Connections opened, the first of each slot included.
        public var opened = 0
        /// Connections the server closed (or refused) and that were reopened.
        public var closedByServer = 0
        public var bytesSent = 0
        public var description: String { "\(opened) opened, \(closedByServer) closed by the server, \(bytesSent) bytes sent" }
    }

    private final class State: Sendable {
        let stopped = Atomic<Bool>(false)
        let tally = Locked(Tally())
    }

    private let state = State()

    /// Starts at once; runs until `stop()`.
    public init(_ targets: [Target], interval: TimeInterval = 0.5) {
        let state = self.state
        let thread = Thread {
            var slots: [(target: Target, fd: Int32)] = targets.flatMap { target in (0..<target.count).map { _ in (target, Int32(-1)) } }
            var byte: UInt8 = 0x16
            while !state.stopped.load(ordering: .relaxed) {
                for index in slots.indices {
                    if slots[index].fd < 0 {
                        slots[index].fd = Self.open(slots[index].target)
                        if slots[index].fd >= 0 { state.tally.withLock { $0.opened += 1 } }
                        continue
                    }
                    let fd = slots[index].fd
                    var probe: UInt8 = 0
                    let read = recv(fd, &probe, 1, Int32(MSG_DONTWAIT))
                    let peerClosed = read == 0 || (read < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != ENOTCONN)
                    let sent = peerClosed ? -1 : send(fd, &byte, 1, Int32(MSG_DONTWAIT | MSG_NOSIGNAL))
                    if sent == 1 {
                        state.tally.withLock { $0.bytesSent += 1 }
                    } else if peerClosed || (errno != EAGAIN && errno != EWOULDBLOCK && errno != ENOTCONN) {
                        close(fd)
                        slots[index].fd = -1
                        state.tally.withLock { $0.closedByServer += 1 }
                    }
                }
                Thread.sleep(forTimeInterval: interval)
            }
            for slot in slots where slot.fd >= 0 { close(slot.fd) }
        }
        thread.start()
    }

    public var current: Tally { state.tally.withLock { $0 } }

    public func stop() {
        state.stopped.store(true, ordering: .relaxed)
    }

    /// A non-blocking socket whose connect is under way; -1 if none could be made.
    private static func open(_ target: Target) -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard fd >= 0 else { return -1 }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = target.port.bigEndian
        guard inet_pton(AF_INET, target.host, &address.sin_addr) == 1 else {
            close(fd)
            return -1
        }
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard result == 0 || errno == EINPROGRESS else {
            close(fd)
            return -1
        }
        return fd
    }
}
