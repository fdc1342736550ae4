import ClusterCertificates
import NIOCore
import NIOPosix
import NIOSSL
import NIOTLS

/// Asks a peer to prove who it is: a mutual-TLS handshake with its Raft listener, then the
/// connection is closed without a byte of Raft. Autopilot uses it before it adds a machine to
/// the Raft group, because membership's gossip says what a machine claims, and only its
/// certificate says what the cluster's CA let it be.
public enum IdentityProbe {
    /// The identity the certificate at `address` proved, or nil when none was proved in
    /// `timeout` (no answer, a refused or failed handshake, a certificate without a Flotilla role).
    public static func identity(at address: PeerAddress, contexts: PeerTLS, timeout: TimeAmount,
                                group: any EventLoopGroup) async -> PeerIdentity? {
        let done = group.any().makePromise(of: PeerIdentity?.self)
        let bootstrap = ClientBootstrap(group: group)
            .connectTimeout(timeout)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(NIOSSLClientHandler(context: contexts.clientContext, serverHostname: nil))
                    try channel.pipeline.syncOperations.addHandler(ProbeHandler(done: done))
                }
            }
        let channel: any Channel
        do {
            channel = try await bootstrap.connect(peer: address).get()
        } catch {
            done.succeed(nil)
            return nil
        }
        let deadline = channel.eventLoop.scheduleTask(in: timeout) { done.succeed(nil) }
        let identity = (try? await done.futureResult.get()) ?? nil
        deadline.cancel()
        try? await channel.close()
        return identity
    }
}

/// Completes `done` with the server certificate's identity once the handshake completes, or
/// with nil when the connection fails or closes first. Completing twice is harmless.
private final class ProbeHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    let done: EventLoopPromise<PeerIdentity?>

    init(done: EventLoopPromise<PeerIdentity?>) {
        self.done = done
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case TLSUserEvent.handshakeCompleted = event {
            let handler = try? context.pipeline.syncOperations.handler(type: NIOSSLClientHandler.self)
            done.succeed(handler?.peerCertificate.flatMap(PeerIdentity.init))
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        done.succeed(nil)
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        done.succeed(nil)
        context.fireChannelInactive()
    }
}
