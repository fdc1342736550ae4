import ClusterCertificates
import Glibc
import Logging
import NIOCore
import NIOPosix
import Raft
import RaftReplica
import Transport

/// `flotilla-raft-bench replica`: one replica process. Its state machine counts commands and
/// answers nothing (the benchmark measures Raft, not an application). It exits when its standard
/// input closes, so that replicas never outlive a driver that died.
struct ReplicaOptions {
    var id: NodeID
    var peers: [NodeID: PeerAddress]
    var clientPort: Int
    var dataDirectory: String
    var tickMilliseconds = 10
    var electionTimeoutTicks = 10
    /// ca, certificate, key: mutual TLS between replicas.
    var tlsFiles: (ca: String, certificate: String, key: String)?

    static func parse(_ arguments: [String]) -> ReplicaOptions {
        var id: UInt64?
        var peers: [NodeID: PeerAddress] = [:]
        var clientPort: Int?
        var dataDirectory: String?
        var tickMilliseconds = 10
        var electionTimeoutTicks = 10
        var ca: String?, certificate: String?, key: String?
        var iterator = arguments.makeIterator()
        while let flag = iterator.next() {
            guard let value = iterator.next() else { usage("missing value for \(flag)") }
            switch flag {
            case "--id": id = UInt64(value)
            case "--peers": peers = parsePeers(value)
            case "--client-port": clientPort = Int(value)
            case "--data-dir": dataDirectory = value
            case "--tick-ms": tickMilliseconds = Int(value) ?? 0
            case "--election-ticks": electionTimeoutTicks = Int(value) ?? 0
            case "--ca-file": ca = value
            case "--cert-file": certificate = value
            case "--key-file": key = value
            default: usage("unknown option \(flag)")
            }
        }
        guard let id, id > 0, let clientPort, let dataDirectory, peers[NodeID(id)] != nil,
              tickMilliseconds > 0, electionTimeoutTicks > 1 else {
            usage("replica needs --id N (listed in --peers) --peers 1=HOST:PORT,... --client-port P --data-dir DIR")
        }
        var options = ReplicaOptions(id: NodeID(id), peers: peers, clientPort: clientPort, dataDirectory: dataDirectory,
                                     tickMilliseconds: tickMilliseconds, electionTimeoutTicks: electionTimeoutTicks)
        if let ca, let certificate, let key { options.tlsFiles = (ca, certificate, key) }
        return options
    }

    /// "1=127.0.0.1:7001,2=127.0.0.1:7002"
    static func parsePeers(_ text: String) -> [NodeID: PeerAddress] {
        var peers: [NodeID: PeerAddress] = [:]
        for item in text.split(separator: ",") {
            let parts = item.split(separator: "=", maxSplits: 1)
            guard parts.count == 2, let id = UInt64(parts[0]), id > 0 else { usage("bad peer \(item)") }
            let address = parts[1].split(separator: ":")
            guard address.count == 2, let port = Int(address[1]) else { usage("bad peer address \(item)") }
            peers[NodeID(id)] = PeerAddress(host: String(address[0]), port: port)
        }
        return peers
    }
}

func runReplica(_ options: ReplicaOptions) async throws {
    var logger = Logger(label: "replica-\(options.id)")
    logger.logLevel = .notice
    let raft = try RaftConfiguration(electionTimeoutTicks: options.electionTimeoutTicks, heartbeatIntervalTicks: 1)
    let configuration = try ReplicaConfiguration(
        id: options.id, foundingVoters: options.peers.keys.sorted(), dataDirectory: options.dataDirectory,
        raft: raft, tickInterval: .milliseconds(Int64(options.tickMilliseconds)),
        randomSeed: UInt64(getpid()) &* 0x9E37_79B9 &+ options.id.rawValue)
    var others = options.peers
    let listen = others.removeValue(forKey: options.id)!
    var transportConfiguration = try TransportConfiguration(
        localID: options.id, listenAddress: listen, peers: others,
        reconnectDelayMin: .milliseconds(5), reconnectDelayMax: .milliseconds(200), jitterSeed: options.id.rawValue)
    if let files = options.tlsFiles {
        // Every replica is on 127.0.0.1, so the certificate's machine ("mN") binds it to node N.
        transportConfiguration.tls = TransportTLS(
            contexts: try PeerTLS.load(caFile: files.ca, certificateFile: files.certificate, keyFile: files.key),
            mayAcceptMessage: { from, identity in identity.role == .server && identity.machineID == "m\(from.rawValue)" })
    }
    // One thread for Raft (it blocks in fsync), one for peer IO, one for clients.
    let raftGroup = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    let ioGroup = MultiThreadedEventLoopGroup(numberOfThreads: 2)
    let replica = try await RaftReplica.start(
        configuration: configuration, transportConfiguration: transportConfiguration,
        eventLoop: raftGroup.next(), transportEventLoop: ioGroup.next(), logger: logger,
        stateMachine: StateMachine(apply: { _ in [] }, restore: { _ in }))
    let server = try await ServerBootstrap(group: ioGroup.next())
        .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
        .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
        .childChannelInitializer { channel in
            channel.eventLoop.makeCompletedFuture {
                try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(ProposeRequestDecoder()))
                try channel.pipeline.syncOperations.addHandler(ClientRequestHandler(replica: replica))
            }
        }
        .bind(host: "127.0.0.1", port: options.clientPort).get()
    logger.notice("replica serving", metadata: ["clientPort": "\(options.clientPort)"])
    await waitForStandardInputToClose()
    try await server.close()
    await replica.stop()
    try await raftGroup.shutdownGracefully()
    try await ioGroup.shutdownGracefully()
}

/// Reads standard input to its end on a thread of its own (a blocking read must not hold the
/// cooperative pool).
func waitForStandardInputToClose() async {
    await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
        let thread = NIOThreadPool(numberOfThreads: 1)
        thread.start()
        thread.submit { _ in
            var byte: UInt8 = 0
            while read(0, &byte, 1) > 0 {}
            continuation.resume()
        }
    }
}

/// Proposes each request's payload and answers when it is applied (or refused).
final class ClientRequestHandler: ChannelInboundHandler {
    typealias InboundIn = ProposeRequest

    let replica: RaftReplica

    init(replica: RaftReplica) { self.replica = replica }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let request = unwrapInboundIn(data)
        let channel = context.channel
        let started = NIODeadline.now()
        replica.propose(request.payload) { result in
            var response = ProposeResponse(requestID: request.requestID, status: .failed, value: 0, index: 0)
            switch result {
            case .success(let applied):
                response.status = .applied
                response.value = UInt64(max(0, (NIODeadline.now() - started).nanoseconds))
                response.index = applied.index
            case .failure(.notLeader(let leaderID)):
                response.status = .notLeader
                response.value = leaderID?.rawValue ?? 0
            case .failure:
                break
            }
            var buffer = channel.allocator.buffer(capacity: 4 + ClientProtocol.responseBodyBytes)
            response.write(into: &buffer)
            channel.writeAndFlush(buffer, promise: nil)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}

func usage(_ message: String) -> Never {
    print("flotilla-raft-bench: \(message)")
    print("""
        usage: flotilla-raft-bench replica --id N --peers 1=127.0.0.1:P1,2=...,3=... --client-port P --data-dir DIR
               flotilla-raft-bench driver [--base-port P] [--work-dir DIR] [--seconds S] [--trials N] [--payload-bytes B] [--proposers 1,64]
        """)
    exit(2)
}
