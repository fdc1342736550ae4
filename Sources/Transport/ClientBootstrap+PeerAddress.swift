import NIOCore
import NIOPosix

extension ClientBootstrap {
    /// Connects to `address`: an IP literal directly, a host name through NIO's resolver.
    ///
    /// Why not always `connect(host:port:)`: it resolves literals too, with an A and an AAAA
    /// lookup on a dispatch queue, and the lookup still running after the connection is made can
    /// finish after its event loop has shut down and then schedule onto it ("Cannot schedule tasks
    /// on an EventLoop that has already shut down": a crash under SWIFTNIO_STRICT=1, and in NIO's
    /// future versions). Seen at the end of loopback tests, one run in four under SWIFTNIO_STRICT.
    public func connect(peer address: PeerAddress) -> EventLoopFuture<any Channel> {
        if let literal = try? SocketAddress(ipAddress: address.host, port: address.port) {
            return connect(to: literal)
        }
        return connect(host: address.host, port: address.port)
    }
}
