import FleetAPI
import Foundation
import HTTPAPI
import Logging
import NIOCore
import NIOPosix
import Testing

/// A server on a unix socket in a fresh temporary directory and on TCP port 0, backed by a
/// `TestBackend`; `run` shuts it down whatever the test body did.
struct ServerFixture {
    let server: HTTPAPIServer
    let backend: TestBackend
    let socketPath: String
    let directory: String

    static var group: any EventLoopGroup { MultiThreadedEventLoopGroup.singleton }

    static func run(configuration: HTTPAPIConfiguration = HTTPAPIConfiguration(),
                    _ body: (ServerFixture) async throws -> Void) async throws {
        let directory = try makeTemporaryDirectory()
        let socketPath = directory + "/api.sock"
        let backend = TestBackend()
        var logger = Logger(label: "HTTPAPITests")
        logger.logLevel = .warning
        let server = try await HTTPAPIServer.start(
            listeners: [.unix(path: socketPath, mode: 0o660), .tcp(host: "127.0.0.1", port: 0)],
            backend: backend, configuration: configuration, eventLoopGroup: group, logger: logger)
        let fixture = ServerFixture(server: server, backend: backend, socketPath: socketPath, directory: directory)
        do {
            try await body(fixture)
        } catch {
            await server.shutdown()
            try? FileManager.default.removeItem(atPath: directory)
            throw error
        }
        await server.shutdown()
        try? FileManager.default.removeItem(atPath: directory)
    }

    func connectUnix() async throws -> RawHTTPConnection {
        try await RawHTTPConnection.connect(to: try SocketAddress(unixDomainSocketPath: socketPath), group: Self.group)
    }

    func connectTCP() async throws -> RawHTTPConnection {
        let port = try #require(server.tcpPort)
        return try await RawHTTPConnection.connect(to: try SocketAddress(ipAddress: "127.0.0.1", port: port), group: Self.group)
    }

    enum Listener { case tcp, unix }

    /// One request on a connection of its own: TCP (a network caller, as api_listen's) unless
    /// `over` says the unix socket (the management identity, the only user listener that serves
    /// the peer routes).
    func request(_ method: String, _ target: String, body: String? = nil, headers: [String] = [],
                 over listener: Listener = .tcp) async throws -> RawResponse {
        let connection = listener == .tcp ? try await connectTCP() : try await connectUnix()
        do {
            let response = try await connection.request(method, target, body: body, headers: headers)
            await connection.close()
            return response
        } catch {
            await connection.close()
            throw error
        }
    }

    private static func makeTemporaryDirectory() throws -> String {
        var template = Array("/tmp/flotilla-httpapi-XXXXXX".utf8CString)
        guard let result = mkdtemp(&template) else { throw RawHTTPError(description: "mkdtemp failed: \(errno)") }
        return String(cString: result)
    }
}

/// Decodes a response body as fleet's error entity.
func errorBody(_ response: RawResponse) throws -> FleetErrorBody {
    try JSONDecoder().decode(FleetErrorBody.self, from: Data(response.body))
}

func decode<Entity: Decodable>(_ type: Entity.Type, _ response: RawResponse) throws -> Entity {
    try JSONDecoder().decode(Entity.self, from: Data(response.body))
}

func unit(_ name: String, desiredState: FleetUnitTargetState? = .launched) -> FleetUnit {
    FleetUnit(name: name, options: [FleetUnitOption(section: "Service", name: "ExecStart", value: "/bin/true")],
              desiredState: desiredState)
}
