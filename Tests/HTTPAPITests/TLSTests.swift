import Client
import FleetAPI
import Foundation
import HTTPAPI
import Logging
import NIOCore
import Testing
import TestSupport

/// HTTPS on a `.tls` listener, end to end over loopback: real sockets, real certificates from a
/// throwaway CA (`TestCertificates`, made with openssl), the real client.
@Suite struct TLSTests {
    @Test func aClientTrustingTheCAIsServedOverHTTPSByAddressAndByName() async throws {
        try await withTLSServer { certificates, backend, port in
            await backend.setUnits([unit("a.service"), unit("b.service")])
            for host in ["127.0.0.1", "localhost"] {
                let client = FlotillaClient(endpoint: .https(host: host, port: port), eventLoopGroup: ServerFixture.group,
                                            tls: ClientTLS(caFilePath: certificates.caPath))
                let names = try await client.listUnits().map(\.name).sorted()
                #expect(names == ["a.service", "b.service"], "host \(host)")
                // The second request goes over the kept-alive TLS connection of the first.
                let unit = try await client.unit(named: "a.service")
                #expect(unit?.name == "a.service", "host \(host)")
                client.closeIdleConnections()
            }
        }
    }

    @Test func aClientNotTrustingTheCAFailsWithAnErrorThatSaysSo() async throws {
        try await withTLSServer { certificates, _, port in
            let client = FlotillaClient(endpoint: .https(host: "127.0.0.1", port: port), eventLoopGroup: ServerFixture.group,
                                        tls: ClientTLS(caFilePath: certificates.otherCAPath))
            let error = await #expect(throws: ClientError.self) { _ = try await client.listUnits() }
            guard case .connection(let message)? = error else {
                Issue.record("expected a connection error, got \(String(describing: error))")
                return
            }
            #expect(message.contains("not signed by a trusted CA"), "\(message)")
            #expect(message.contains("https://127.0.0.1:\(port)"), "\(message)")
        }
    }

    @Test func plainHTTPToTheTLSPortFailsAndTheServerGoesOnServingHTTPS() async throws {
        try await withTLSServer { certificates, _, port in
            let plain = FlotillaClient(endpoint: .tcp(host: "127.0.0.1", port: port), eventLoopGroup: ServerFixture.group)
            let error = await #expect(throws: ClientError.self) { _ = try await plain.listUnits() }
            #expect(error?.status == nil, "plain HTTP must not get an HTTP answer: \(String(describing: error))")

            let client = FlotillaClient(endpoint: .https(host: "127.0.0.1", port: port), eventLoopGroup: ServerFixture.group,
                                        tls: ClientTLS(caFilePath: certificates.caPath))
            let units = try await client.listUnits()
            #expect(units.isEmpty)
            client.closeIdleConnections()
        }
    }

    @Test func anHTTPSClientAgainstAPlainHTTPPortFailsWithAnErrorThatSaysSo() async throws {
        try await ServerFixture.run { fixture in
            let port = try #require(fixture.server.tcpPort)
            let client = FlotillaClient(endpoint: .https(host: "127.0.0.1", port: port), eventLoopGroup: ServerFixture.group)
            let error = await #expect(throws: ClientError.self) { _ = try await client.listUnits() }
            guard case .connection(let message)? = error else {
                Issue.record("expected a connection error, got \(String(describing: error))")
                return
            }
            #expect(message.contains("TLS"), "\(message)")
        }
    }

    @Test func aCAFileThatCannotBeUsedFailsEveryRequestNamingTheFile() async throws {
        let certificates = try await TestCertificates.generate()
        defer { certificates.remove() }
        let notPEM = certificates.directory + "/not-pem.txt"
        try "hello\n".write(toFile: notPEM, atomically: true, encoding: .utf8)
        let cases = [
            (certificates.directory + "/missing.pem", "cannot read the CA file"),
            (notPEM, "is not PEM certificates"),
        ]
        for (path, expected) in cases {
            // Nothing listens at port 9 of loopback: the CA file is refused before any connection.
            let client = FlotillaClient(endpoint: .https(host: "127.0.0.1", port: 9), eventLoopGroup: ServerFixture.group,
                                        tls: ClientTLS(caFilePath: path))
            let error = await #expect(throws: ClientError.self) { _ = try await client.listUnits() }
            #expect(error?.description.contains(expected) == true, "\(String(describing: error))")
            #expect(error?.description.contains(path) == true, "\(String(describing: error))")
        }
    }

    @Test func certificateOrKeyFilesThatCannotBeUsedFailTheStartNamingTheFile() async throws {
        let certificates = try await TestCertificates.generate()
        defer { certificates.remove() }
        let notPEM = certificates.directory + "/not-pem.txt"
        try "hello\n".write(toFile: notPEM, atomically: true, encoding: .utf8)
        let missing = certificates.directory + "/missing.pem"
        let cases: [(certificate: String, key: String, expected: String)] = [
            (missing, certificates.serverKeyPath, "cannot read the certificate chain file \(missing)"),
            (certificates.serverCertificatePath, missing, "cannot read the private key file \(missing)"),
            (notPEM, certificates.serverKeyPath, "the certificate chain file \(notPEM) is not PEM certificates"),
            (certificates.serverCertificatePath, notPEM, "the private key file \(notPEM) is not"),
            (certificates.directory, certificates.serverKeyPath, "cannot read the certificate chain file \(certificates.directory)"),
            // A key that is not the certificate's (the other CA's).
            (certificates.serverCertificatePath, certificates.directory + "/other-ca.key", "check that the key is the certificate's"),
        ]
        for (certificate, key, expected) in cases {
            let listener = APIListener.tls(host: "127.0.0.1", port: 0, certificateChainPath: certificate, privateKeyPath: key)
            do {
                let server = try await HTTPAPIServer.start(listeners: [listener], backend: TestBackend(),
                                                           eventLoopGroup: ServerFixture.group, logger: Self.logger)
                await server.shutdown()
                Issue.record("started with \(certificate) and \(key)")
            } catch {
                #expect(error.reason.contains(expected), "\(error.reason) should say \(expected)")
                #expect(error.listener == listener)
            }
        }
    }

    static let logger: Logger = {
        var logger = Logger(label: "TLSTests")
        logger.logLevel = .warning
        return logger
    }()

    /// A server with one TLS listener on a free loopback port, certificates made for it, both
    /// torn down whatever `body` did.
    private func withTLSServer(_ body: (TestCertificates, TestBackend, Int) async throws -> Void) async throws {
        let certificates = try await TestCertificates.generate()
        defer { certificates.remove() }
        let backend = TestBackend()
        let server = try await HTTPAPIServer.start(
            listeners: [.tls(host: "127.0.0.1", port: 0, certificateChainPath: certificates.serverCertificatePath,
                             privateKeyPath: certificates.serverKeyPath)],
            backend: backend, eventLoopGroup: ServerFixture.group, logger: Self.logger)
        do {
            try await body(certificates, backend, try #require(server.tcpPort))
        } catch {
            await server.shutdown()
            throw error
        }
        await server.shutdown()
    }
}
