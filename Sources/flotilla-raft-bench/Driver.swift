import ClusterCertificates
import Foundation
import NIOCore
import NIOPosix

/// `flotilla-raft-bench driver`: spawns 3 replica processes on loopback and measures them.
struct DriverOptions {
    var basePort = 27_300
    var workDirectory = (ProcessInfo.processInfo.environment["TMPDIR"] ?? "/tmp") + "/flotilla-raft-bench"
    var seconds = 5.0
    var trials = 20
    var payloadBytes = 128
    var proposerCounts = [1, 64]
    /// Mutual TLS between the replicas, as flotillad runs Raft (certificates made here).
    var tls = false

    static func parse(_ arguments: [String]) -> DriverOptions {
        var options = DriverOptions()
        var iterator = arguments.makeIterator()
        while let flag = iterator.next() {
            if flag == "--tls" {
                options.tls = true
                continue
            }
            guard let value = iterator.next() else { usage("missing value for \(flag)") }
            switch flag {
            case "--base-port": options.basePort = Int(value) ?? 0
            case "--work-dir": options.workDirectory = value
            case "--seconds": options.seconds = Double(value) ?? 0
            case "--trials": options.trials = Int(value) ?? -1
            case "--payload-bytes": options.payloadBytes = Int(value) ?? -1
            case "--proposers": options.proposerCounts = value.split(separator: ",").map { Int($0) ?? 0 }
            default: usage("unknown option \(flag)")
            }
        }
        guard (1024...60_000).contains(options.basePort), options.seconds > 0, options.seconds <= 600,
              (0...1000).contains(options.trials), (1...ClientProtocol.payloadBytesMax).contains(options.payloadBytes),
              !options.proposerCounts.isEmpty, options.proposerCounts.allSatisfy({ (1...1024).contains($0) }) else {
            usage("driver options out of range")
        }
        return options
    }
}

/// One replica process; its standard input is a pipe the driver holds, so it dies with the driver.
final class ReplicaProcess {
    let id: Int
    let arguments: [String]
    let logPath: String
    var process: Process?
    var stdinPipe: Pipe?

    init(id: Int, arguments: [String], logPath: String) {
        self.id = id
        self.arguments = arguments
        self.logPath = logPath
    }

    func launch() throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        process.arguments = arguments
        let pipe = Pipe()
        process.standardInput = pipe
        if !FileManager.default.fileExists(atPath: logPath) { _ = FileManager.default.createFile(atPath: logPath, contents: nil) }
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        log.seekToEndOfFile()
        process.standardOutput = log
        process.standardError = log
        try process.run()
        self.process = process
        self.stdinPipe = pipe
    }

    func killHard() {
        guard let process else { return }
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        self.process = nil
        stdinPipe = nil
    }

    func stopGently() {
        guard let process else { return }
        try? stdinPipe?.fileHandleForWriting.close()
        process.waitUntilExit()
        self.process = nil
    }
}

/// A client connection to one replica: requests are matched to responses by ID.
final class BenchClient: Sendable {
    let channel: any Channel
    let handler: NIOLoopBound<ResponseHandler>

    static func connect(port: Int, group: any EventLoopGroup) async throws -> BenchClient {
        let channel = try await ClientBootstrap(group: group)
            .connectTimeout(.milliseconds(500))
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(ProposeResponseDecoder()))
                    try channel.pipeline.syncOperations.addHandler(ResponseHandler())
                }
            }
            .connect(to: try SocketAddress(ipAddress: "127.0.0.1", port: port)).get()
        let handler = try await channel.eventLoop.submit {
            NIOLoopBound(try channel.pipeline.syncOperations.handler(type: ResponseHandler.self), eventLoop: channel.eventLoop)
        }.get()
        return BenchClient(channel: channel, handler: handler)
    }

    init(channel: any Channel, handler: NIOLoopBound<ResponseHandler>) {
        self.channel = channel
        self.handler = handler
    }

    func propose(_ payload: [UInt8], timeout: TimeAmount) async throws -> ProposeResponse {
        try await channel.eventLoop.flatSubmit {
            self.handler.value.send(payload, on: self.channel, timeout: timeout)
        }.get()
    }

    func close() { channel.close(promise: nil) }
}

struct RequestTimedOut: Error {}
struct ConnectionClosed: Error {}

final class ResponseHandler: ChannelInboundHandler {
    typealias InboundIn = ProposeResponse

    var nextRequestID: UInt64 = 1
    var waiting: [UInt64: EventLoopPromise<ProposeResponse>] = [:]

    func send(_ payload: [UInt8], on channel: any Channel, timeout: TimeAmount) -> EventLoopFuture<ProposeResponse> {
        let requestID = nextRequestID
        nextRequestID += 1
        let promise = channel.eventLoop.makePromise(of: ProposeResponse.self)
        waiting[requestID] = promise
        var buffer = channel.allocator.buffer(capacity: 12 + payload.count)
        ProposeRequest(requestID: requestID, payload: payload).write(into: &buffer)
        channel.writeAndFlush(buffer, promise: nil)
        let bound = NIOLoopBound(self, eventLoop: channel.eventLoop)
        let timer = channel.eventLoop.scheduleTask(in: timeout) {
            bound.value.waiting.removeValue(forKey: requestID)?.fail(RequestTimedOut())
        }
        promise.futureResult.whenComplete { _ in timer.cancel() }
        return promise.futureResult
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let response = unwrapInboundIn(data)
        waiting.removeValue(forKey: response.requestID)?.succeed(response)
    }

    func channelInactive(context: ChannelHandlerContext) {
        let failed = waiting
        waiting = [:]
        for promise in failed.values { promise.fail(ConnectionClosed()) }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) { context.close(promise: nil) }
}

func percentile(_ values: [Double], _ fraction: Double) -> Double {
    guard !values.isEmpty else { return .nan }
    let sorted = values.sorted()
    return sorted[min(sorted.count - 1, Int(Double(sorted.count) * fraction))]
}

func format(_ value: Double, _ digits: Int = 2) -> String { String(format: "%.\(digits)f", value) }

final class Driver {
    let options: DriverOptions
    let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    var replicas: [Int: ReplicaProcess] = [:]
    let payload: [UInt8]

    init(options: DriverOptions) {
        self.options = options
        payload = (0..<options.payloadBytes).map { UInt8(truncatingIfNeeded: $0) }
    }

    /// A CA and a server certificate per replica (machine "mN", 127.0.0.1), made with the
    /// cluster's tooling; the replicas' TLS arguments by ID.
    func makeCertificates() throws -> [Int: [String]] {
        let directory = options.workDirectory + "/tls"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let authority = try ClusterCertificates.createAuthority()
        try authority.certificatePEM.write(toFile: "\(directory)/ca.pem", atomically: true, encoding: .utf8)
        var arguments: [Int: [String]] = [:]
        for id in 1...3 {
            let issued = try ClusterCertificates.issue(.init(role: .server, machineID: "m\(id)", ipAddresses: ["127.0.0.1"]),
                                                       authorityCertificatePEM: authority.certificatePEM, authorityKeyPEM: authority.privateKeyPEM)
            try issued.certificatePEM.write(toFile: "\(directory)/m\(id).pem", atomically: true, encoding: .utf8)
            try issued.privateKeyPEM.write(toFile: "\(directory)/m\(id)-key.pem", atomically: true, encoding: .utf8)
            arguments[id] = ["--ca-file", "\(directory)/ca.pem", "--cert-file", "\(directory)/m\(id).pem", "--key-file", "\(directory)/m\(id)-key.pem"]
        }
        return arguments
    }

    func raftPort(_ id: Int) -> Int { options.basePort + id }
    func clientPort(_ id: Int) -> Int { options.basePort + 100 + id }

    func run() async throws {
        try? FileManager.default.removeItem(atPath: options.workDirectory)
        try FileManager.default.createDirectory(atPath: options.workDirectory, withIntermediateDirectories: true)
        let peers = (1...3).map { "\($0)=127.0.0.1:\(raftPort($0))" }.joined(separator: ",")
        let tlsArguments = options.tls ? try makeCertificates() : [:]
        for id in 1...3 {
            replicas[id] = ReplicaProcess(id: id, arguments: [
                "replica", "--id", "\(id)", "--peers", peers, "--client-port", "\(clientPort(id))",
                "--data-dir", "\(options.workDirectory)/n\(id)",
            ] + (tlsArguments[id] ?? []), logPath: "\(options.workDirectory)/n\(id).log")
            try replicas[id]!.launch()
        }
        defer { for replica in replicas.values { replica.killHard() } }
        print("replicas started\(options.tls ? " with mutual TLS 1.3" : " in plain TCP"); data and logs in \(options.workDirectory)")
        _ = try await findLeader(timeout: .seconds(30))

        for proposers in options.proposerCounts {
            let leader = try await findLeader(timeout: .seconds(30))
            _ = try await measureThroughput(leader: leader, proposers: proposers, seconds: 1)  // warm-up
            let result = try await measureThroughput(leader: leader, proposers: proposers, seconds: options.seconds)
            print("""
                \(proposers) proposer(s), \(format(options.seconds, 0)) s, \(options.payloadBytes)-byte commands: \
                \(Int(result.committedPerSecond)) committed proposals/s; commit latency on the leader \
                (propose to applied) p50 \(format(result.commitP50Milliseconds)) ms, p99 \(format(result.commitP99Milliseconds)) ms; \
                client round trip p50 \(format(result.roundTripP50Milliseconds)) ms, p99 \(format(result.roundTripP99Milliseconds)) ms; \
                failed \(result.failed)
                """)
        }

        if options.trials > 0 {
            var failovers: [Double] = []
            for trial in 1...options.trials {
                let milliseconds = try await measureFailover()
                failovers.append(milliseconds)
                print("failover trial \(trial): \(format(milliseconds, 1)) ms")
            }
            print("""
                failover (kill -9 of the leader to a new leader committing), \(failovers.count) trials: \
                p50 \(format(percentile(failovers, 0.5), 1)) ms, p90 \(format(percentile(failovers, 0.9), 1)) ms, \
                min \(format(failovers.min()!, 1)) ms, max \(format(failovers.max()!, 1)) ms
                """)
        }
        for replica in replicas.values { replica.stopGently() }
        try await group.shutdownGracefully()
    }

    /// The replica that applies a proposal; followers name the leader they know.
    func findLeader(timeout: Duration, excluding excluded: Int? = nil) async throws -> Int {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            for id in 1...3 where id != excluded {
                if try await proposeOnce(to: id, timeout: .milliseconds(1000)) { return id }
            }
            try await Task.sleep(for: .milliseconds(2))
        }
        throw RequestTimedOut()
    }

    /// Whether `id` applied one proposal (false when it is not the leader or cannot be reached).
    func proposeOnce(to id: Int, timeout: TimeAmount) async throws -> Bool {
        guard let client = try? await BenchClient.connect(port: clientPort(id), group: group) else { return false }
        defer { client.close() }
        guard let response = try? await client.propose(payload, timeout: timeout) else { return false }
        return response.status == .applied
    }

    struct Throughput {
        var committedPerSecond: Double
        var commitP50Milliseconds: Double
        var commitP99Milliseconds: Double
        var roundTripP50Milliseconds: Double
        var roundTripP99Milliseconds: Double
        var failed: Int
    }

    struct ProposerResult: Sendable {
        var commitNanoseconds: [UInt64] = []
        var roundTripNanoseconds: [Int64] = []
        var failed = 0
    }

    /// Each proposer is a connection whose handler sends its next request as soon as the previous
    /// one is answered, on the driver's event loop: no task switch per request, so the client's
    /// own overhead stays small next to what is measured.
    func measureThroughput(leader: Int, proposers: Int, seconds: Double) async throws -> Throughput {
        let deadline = NIODeadline.now() + .milliseconds(Int64(seconds * 1000))
        let started = NIODeadline.now()
        var results: [EventLoopFuture<ProposerResult>] = []
        for _ in 0..<proposers {
            let promise = group.next().makePromise(of: ProposerResult.self)
            let payload = self.payload
            let channel = try await ClientBootstrap(group: promise.futureResult.eventLoop)
                .connectTimeout(.seconds(1))
                .channelOption(.tcpOption(.tcp_nodelay), value: 1)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(ProposeResponseDecoder()))
                        try channel.pipeline.syncOperations.addHandler(
                            ClosedLoopProposer(payload: payload, deadline: deadline, done: promise))
                    }
                }
                .connect(to: try SocketAddress(ipAddress: "127.0.0.1", port: clientPort(leader))).get()
            results.append(promise.futureResult.always { _ in channel.close(promise: nil) })
        }
        var all: [ProposerResult] = []
        for result in results { all.append(try await result.get()) }
        let elapsedSeconds = Double((NIODeadline.now() - started).nanoseconds) / 1e9
        let commits = all.flatMap(\.commitNanoseconds).map { Double($0) / 1e6 }
        let roundTrips = all.flatMap(\.roundTripNanoseconds).map { Double($0) / 1e6 }
        return Throughput(
            committedPerSecond: Double(commits.count) / elapsedSeconds,
            commitP50Milliseconds: percentile(commits, 0.5), commitP99Milliseconds: percentile(commits, 0.99),
            roundTripP50Milliseconds: percentile(roundTrips, 0.5), roundTripP99Milliseconds: percentile(roundTrips, 0.99),
            failed: all.map(\.failed).reduce(0, +))
    }

    /// Kills the leader with SIGKILL and measures until another replica applies a proposal; then
    /// restarts the killed one from its directory and waits until it follows the new leader.
    func measureFailover() async throws -> Double {
        let leader = try await findLeader(timeout: .seconds(30))
        // Give the followers a moment of heartbeats so that every trial starts from a settled cluster.
        try await Task.sleep(for: .milliseconds(300))
        let killed = NIODeadline.now()
        replicas[leader]!.killHard()
        let newLeader = try await findLeader(timeout: .seconds(30), excluding: leader)
        let milliseconds = Double((NIODeadline.now() - killed).nanoseconds) / 1e6
        try replicas[leader]!.launch()
        // The restarted replica is back once it answers a client and knows the leader.
        let deadline = ContinuousClock.now + .seconds(30)
        while ContinuousClock.now < deadline {
            if let client = try? await BenchClient.connect(port: clientPort(leader), group: group) {
                let response = try? await client.propose(payload, timeout: .milliseconds(500))
                client.close()
                if let response, response.status == .notLeader, response.value == UInt64(newLeader) { break }
                if let response, response.status == .applied { break }
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        return milliseconds
    }
}

/// One closed-loop proposer: a request, its answer, the next request, until the deadline.
final class ClosedLoopProposer: ChannelInboundHandler {
    typealias InboundIn = ProposeResponse

    let payload: [UInt8]
    let deadline: NIODeadline
    let done: EventLoopPromise<Driver.ProposerResult>
    var result = Driver.ProposerResult()
    var nextRequestID: UInt64 = 1
    var sentAt = NIODeadline.now()
    var isDone = false

    init(payload: [UInt8], deadline: NIODeadline, done: EventLoopPromise<Driver.ProposerResult>) {
        self.payload = payload
        self.deadline = deadline
        self.done = done
    }

    func channelActive(context: ChannelHandlerContext) {
        sendNext(context: context)
        context.fireChannelActive()
    }

    func sendNext(context: ChannelHandlerContext) {
        guard NIODeadline.now() < deadline else { return finish() }
        var buffer = context.channel.allocator.buffer(capacity: 12 + payload.count)
        ProposeRequest(requestID: nextRequestID, payload: payload).write(into: &buffer)
        nextRequestID += 1
        sentAt = NIODeadline.now()
        context.writeAndFlush(NIOAny(buffer), promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let response = unwrapInboundIn(data)
        if response.status == .applied {
            result.commitNanoseconds.append(response.value)
            result.roundTripNanoseconds.append((NIODeadline.now() - sentAt).nanoseconds)
        } else {
            result.failed += 1
        }
        sendNext(context: context)
    }

    func finish() {
        guard !isDone else { return }
        isDone = true
        done.succeed(result)
    }

    func channelInactive(context: ChannelHandlerContext) {
        if !isDone {
            isDone = true
            done.fail(ConnectionClosed())
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) { context.close(promise: nil) }
}
