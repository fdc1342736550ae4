import ClusterCertificates
import Foundation
import Logging
import NIOCore
import NIOPosix
import Raft
import Testing
import TestSupport
import Wire

@testable import Transport

/// The test cluster's policy, as the daemon's will be: node N is machine "mN", and only server
/// certificates speak Raft.
let machineOfNode: @Sendable (NodeID) -> String = { "m\($0.rawValue)" }
func clusterTLS(_ contexts: PeerTLS) -> TransportTLS {
    TransportTLS(contexts: contexts,
                 mayAcceptMessage: { from, identity in identity.role == .server && identity.machineID == machineOfNode(from) },
                 isServer: { peer, _, identity in identity.role == .server && identity.machineID == machineOfNode(peer) })
}

func startTLSTransport(id: UInt64, tls: TransportTLS?, peers: [NodeID: PeerAddress] = [:], group: any EventLoopGroup,
                       received: ReceivedMessages) async throws -> Transport {
    var configuration = try TransportConfiguration(
        localID: NodeID(id), listenAddress: PeerAddress(host: loopback, port: 0), peers: peers,
        reconnectDelayMin: .milliseconds(5), reconnectDelayMax: .milliseconds(100), jitterSeed: id)
    configuration.tls = tls
    return try await Transport.start(configuration: configuration, eventLoop: group.next(),
                                     logger: Logger(label: "transport-tls-test-\(id)"), receive: { received.append($0) })
}

/// Raft over mutual TLS 1.3: only certificates of the cluster's CA connect, and a certificate
/// speaks only for its own node (issue 13: "forged entries plus a commit index").
@Suite("Transport over mutual TLS", .serialized)
struct TransportTLSTests {
    @Test func serversWithTheClustersCertificatesExchangeMessages() async throws {
        let certificates = try ClusterTestCertificates()
        defer { certificates.remove() }
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let receivedByB = ReceivedMessages()
        let b = try await startTLSTransport(id: 2, tls: clusterTLS(try certificates.peer("m2")), group: group, received: receivedByB)
        let a = try await startTLSTransport(id: 1, tls: clusterTLS(try certificates.peer("m1")),
                                            peers: [NodeID(2): PeerAddress(host: loopback, port: b.listenPort)],
                                            group: group, received: ReceivedMessages())
        let sent = (1...50).map { heartbeat(from: 1, to: 2, term: UInt64($0)) }
        a.send(sent)
        try await eventually("50 messages at B") { receivedByB.all.count == 50 }
        #expect(receivedByB.all == sent)
        let counters = await b.counters()
        #expect(counters.messagesDroppedUnauthorized == 0 && counters.handshakeFailures == 0)
        await a.shutdown()
        await b.shutdown()
        try await group.shutdownGracefully()
    }

    /// Each sender reaches B and is refused: a plain TCP peer and one with another CA's
    /// certificate fail the handshake; a valid machine speaking as another node, and an agent's
    /// certificate speaking as a server, are dropped on their first message. B receives nothing.
    @Test func strangersAndImpostorsAreRefusedAndCounted() async throws {
        let certificates = try ClusterTestCertificates()
        let others = try ClusterTestCertificates()
        defer { certificates.remove(); others.remove() }
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let receivedByB = ReceivedMessages()
        let b = try await startTLSTransport(id: 2, tls: clusterTLS(try certificates.peer("m2")), group: group, received: receivedByB)
        let target = [NodeID(2): PeerAddress(host: loopback, port: b.listenPort)]
        // An impostor that accepts any server certificate, so that only B's checks decide.
        func lenient(_ contexts: PeerTLS) -> TransportTLS {
            TransportTLS(contexts: contexts, mayAcceptMessage: { _, _ in true }, isServer: { _, _, _ in true })
        }
        // Each case waits for its own counter: a refusal of the previous case can still be
        // counted late (its alert arrives after the sender shut down).
        let senders: [(String, TransportTLS?, KeyPath<TransportCounters, Int>)] = [
            ("plain TCP", nil, \.handshakeFailures),
            ("another CA", lenient(try others.peer("m1")), \.handshakeFailures),
            ("m3 speaking as node 1", lenient(try certificates.peer("m3")), \.messagesDroppedUnauthorized),
            ("an agent certificate", lenient(try certificates.peer("m1", role: .agent)), \.messagesDroppedUnauthorized),
        ]
        for (index, (name, tls, counter)) in senders.enumerated() {
            let before = await b.counters()[keyPath: counter]
            let sender = try await startTLSTransport(id: 1, tls: tls, peers: target, group: group, received: ReceivedMessages())
            sender.send([heartbeat(from: 1, to: 2, term: UInt64(index + 1))])
            try await eventually("\(name) refused") { await b.counters()[keyPath: counter] > before }
            await sender.shutdown()
        }
        #expect(receivedByB.all.isEmpty, "\(receivedByB.all)")
        let counters = await b.counters()
        #expect(counters.messagesDroppedUnauthorized == 2, "\(counters)")
        #expect(counters.messagesReceived == 0)
        await b.shutdown()
        try await group.shutdownGracefully()
    }

    /// The outbound side: a server that answers at peer 2's address with another machine's
    /// (valid) certificate is never written to.
    @Test func aServerWithAnotherMachinesCertificateIsNeverSentTo() async throws {
        let certificates = try ClusterTestCertificates()
        defer { certificates.remove() }
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let receivedByImpostor = ReceivedMessages()
        let impostor = try await startTLSTransport(
            id: 2, tls: TransportTLS(contexts: try certificates.peer("m3"), mayAcceptMessage: { _, _ in true }),
            group: group, received: receivedByImpostor)
        let a = try await startTLSTransport(id: 1, tls: clusterTLS(try certificates.peer("m1")),
                                            peers: [NodeID(2): PeerAddress(host: loopback, port: impostor.listenPort)],
                                            group: group, received: ReceivedMessages())
        a.send([heartbeat(from: 1, to: 2, term: 1)])
        try await eventually("A refused the impostor twice") { await a.counters().connectionsClosedUnauthorized >= 2 }
        #expect(receivedByImpostor.all.isEmpty)
        #expect(await a.counters().messagesSent == 0)
        await a.shutdown()
        await impostor.shutdown()
        try await group.shutdownGracefully()
    }
}

/// `IdentityProbe`: what autopilot learns of a machine before it adds it to the Raft group.
@Suite("Identity probe") struct IdentityProbeTests {
    @Test func theProbeReportsTheCertificateTheListenerProvedAndNothingElse() async throws {
        let certificates = try ClusterTestCertificates()
        let others = try ClusterTestCertificates()
        defer { certificates.remove(); others.remove() }
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let prober = try certificates.peer("leader")
        let server = try await startTLSTransport(id: 2, tls: clusterTLS(try certificates.peer("m2")), group: group, received: ReceivedMessages())
        let agent = try await startTLSTransport(id: 3, tls: clusterTLS(try certificates.peer("m3", role: .agent)), group: group,
                                                received: ReceivedMessages())
        let stranger = try await startTLSTransport(id: 4, tls: clusterTLS(try others.peer("m4")), group: group, received: ReceivedMessages())
        let plain = try await startTransport(id: 5, group: group, received: ReceivedMessages())
        func probe(_ transport: Transport) async -> PeerIdentity? {
            await IdentityProbe.identity(at: PeerAddress(host: loopback, port: transport.listenPort), contexts: prober,
                                         timeout: .seconds(2), group: group)
        }
        #expect(await probe(server) == PeerIdentity(role: .server, machineID: "m2", ipAddresses: [loopback]))
        #expect(await probe(agent) == PeerIdentity(role: .agent, machineID: "m3", ipAddresses: [loopback]))
        #expect(await probe(stranger) == nil, "another CA's certificate proves nothing")
        #expect(await probe(plain) == nil, "a plain TCP listener proves nothing")
        // Nobody listening: refused at once.
        let closedPort = plain.listenPort
        await plain.shutdown()
        #expect(await IdentityProbe.identity(at: PeerAddress(host: loopback, port: closedPort), contexts: prober,
                                             timeout: .seconds(2), group: group) == nil)
        for transport in [server, agent, stranger] { await transport.shutdown() }
        try await group.shutdownGracefully()
    }
}
