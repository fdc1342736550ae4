@testable import CLI
import Client
import Foundation
import HTTPAPI
import Logging
import NIOPosix
import Testing
import TestSupport

/// flotillactl (in-process, output captured) against HTTPAPI's real server on an HTTPS listener
/// on loopback, with a certificate from a throwaway CA made by openssl.
@Suite("flotillactl over https", .serialized)
struct TLSCommandTests {
    @Test func listMachinesOverHTTPSWithCAFileBeforeOrAfterTheCommand() async throws {
        try await withTLSServer { certificates, endpoint in
            for arguments in [["list-machines", "--no-legend", "--endpoint", endpoint, "--ca-file", certificates.caPath],
                              ["--endpoint", endpoint, "--ca-file=\(certificates.caPath)", "list-machines", "--no-legend"]] {
                let result = await run(arguments)
                #expect(result.status == 0, "\(arguments): \(result.error)")
                #expect(result.output.hasPrefix("01234567...\t10.0.0.1"), "\(arguments): \(result.output)")
            }
        }
    }

    @Test func withoutTheCAFileTheCommandFailsSayingTheCertificateIsNotTrusted() async throws {
        try await withTLSServer { certificates, endpoint in
            let result = await run(["list-machines", "--endpoint", endpoint, "--ca-file", certificates.otherCAPath])
            #expect(result.status == 1)
            #expect(result.error.contains("not signed by a trusted CA"), "\(result.error)")
            #expect(result.error.contains("--ca-file"), "\(result.error)")
        }
    }

    @Test func aMissingCAFileIsNamedInTheError() async throws {
        try await withTLSServer { certificates, endpoint in
            let missing = certificates.directory + "/nope.pem"
            let result = await run(["list-units", "--endpoint", endpoint, "--ca-file", missing])
            #expect(result.status == 1)
            #expect(result.error.contains("cannot read the CA file \(missing)"), "\(result.error)")
        }
    }

    private func run(_ arguments: [String]) async -> CommandTests.Result {
        let console = Console(capturing: true)
        let status = await Console.$current.withValue(console) { await Flotillactl.run(arguments: arguments) }
        return CommandTests.Result(status: status, output: console.capturedOutput, error: console.capturedError)
    }

    /// `body` gets the certificates and the server's endpoint as a user writes it
    /// (`https://localhost:PORT`: the certificate names localhost).
    private func withTLSServer(_ body: (TestCertificates, String) async throws -> Void) async throws {
        let certificates = try await TestCertificates.generate()
        defer { certificates.remove() }
        let server = try await HTTPAPIServer.start(
            listeners: [.tls(host: "127.0.0.1", port: 0, certificateChainPath: certificates.serverCertificatePath,
                             privateKeyPath: certificates.serverKeyPath)],
            backend: InMemoryBackend(), eventLoopGroup: MultiThreadedEventLoopGroup.singleton,
            logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }))
        do {
            try await body(certificates, "https://localhost:\(try #require(server.tcpPort))")
        } catch {
            await server.shutdown()
            throw error
        }
        await server.shutdown()
    }
}
