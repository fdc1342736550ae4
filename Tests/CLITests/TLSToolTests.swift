@testable import CLI
import ClusterCertificates
import Foundation
import HTTPAPI
import Logging
import NIOPosix
import Testing
import TestSupport
import X509

/// `flotillactl tls`: the files it writes are what openssl, NIOSSL and flotillactl's own
/// client accept, and they carry the role and machine the daemon will read from them.
@Suite("flotillactl tls", .serialized)
struct TLSToolTests {
    func run(_ arguments: [String]) async -> CommandTests.Result {
        let console = Console(capturing: true)
        let status = await Console.$current.withValue(console) { await Flotillactl.run(arguments: arguments) }
        return CommandTests.Result(status: status, output: console.capturedOutput, error: console.capturedError)
    }

    func openssl(_ arguments: String...) async throws -> ChildProcess.Result {
        try await ChildProcess.runOnOwnThread([TestCertificates.opensslPath] + arguments, timeoutSeconds: 60)
    }

    @Test func aCAAndItsCertificatesVerifyWithOpensslAndServeHTTPS() async throws {
        let directory = NSTemporaryDirectory() + "flotilla-tls-\(UInt64.random(in: 0...UInt64.max))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let ca = ["--ca", "\(directory)/flotilla-ca.pem", "--ca-key", "\(directory)/flotilla-ca-key.pem", "--directory", directory]

        let authority = await run(["tls", "ca", "create", "--directory", directory])
        #expect(authority.status == 0, "\(authority.error)")
        #expect(authority.output.contains("flotilla-ca-key.pem"))
        let server = await run(["tls", "cert", "create", "--server", "--machine", "m1", "--ip", "127.0.0.1", "--dns", "localhost"] + ca)
        #expect(server.status == 0, "\(server.error)")
        let client = await run(["tls", "cert", "create", "--client", "--name", "operator"] + ca)
        #expect(client.status == 0, "\(client.error)")

        for file in ["server-m1.pem", "operator.pem"] {
            let verified = try await openssl("verify", "-CAfile", "\(directory)/flotilla-ca.pem", "\(directory)/\(file)")
            #expect(verified.status == 0 && verified.standardOutput.contains(": OK"), "\(file): \(verified.standardError)")
        }
        let names = try await openssl("x509", "-noout", "-ext", "subjectAltName,extendedKeyUsage", "-in", "\(directory)/server-m1.pem")
        for expected in ["DNS:server.flotilla", "URI:urn:flotilla:machine:m1", "IP Address:127.0.0.1", "DNS:localhost",
                         "TLS Web Server Authentication", "TLS Web Client Authentication"] {
            #expect(names.standardOutput.contains(expected), "\(expected) in \(names.standardOutput)")
        }
        let parsed = try Certificate(pemEncoded: try String(contentsOfFile: "\(directory)/server-m1.pem", encoding: .utf8))
        #expect(ClusterCertificates.identity(of: parsed)?.role == .server)
        #expect(ClusterCertificates.identity(of: parsed)?.machineID == "m1")
        let clientCertificate = try Certificate(pemEncoded: try String(contentsOfFile: "\(directory)/operator.pem", encoding: .utf8))
        #expect(ClusterCertificates.identity(of: clientCertificate)?.role == .client)
        #expect(ClusterCertificates.identity(of: clientCertificate)?.machineID == nil)

        let mode = try FileManager.default.attributesOfItem(atPath: "\(directory)/server-m1-key.pem")[.posixPermissions] as? Int
        #expect(mode == 0o600)
        // A key is never overwritten; a peer certificate needs its machine; one role only.
        #expect(await run(["tls", "cert", "create", "--server", "--machine", "m1"] + ca).status != 0)
        let noMachine = await run(["tls", "cert", "create", "--agent"] + ca)
        #expect(noMachine.status != 0 && noMachine.error.contains("--machine"), "\(noMachine.error)")
        #expect(await run(["tls", "cert", "create", "--agent", "--client", "--machine", "m2"] + ca).status != 0)
        let otherCA = NSTemporaryDirectory() + "flotilla-tls-other-\(UInt64.random(in: 0...UInt64.max))"
        try FileManager.default.createDirectory(atPath: otherCA, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: otherCA) }
        #expect(await run(["tls", "ca", "create", "--directory", otherCA]).status == 0)
        let mismatched = await run(["tls", "cert", "create", "--agent", "--machine", "m2", "--ca", "\(directory)/flotilla-ca.pem",
                                    "--ca-key", "\(otherCA)/flotilla-ca-key.pem", "--directory", directory])
        #expect(mismatched.status != 0 && mismatched.error.contains("does not belong"), "\(mismatched.error)")

        // NIOSSL serves the server's files; flotillactl's client trusts them through the CA.
        let https = try await HTTPAPIServer.start(
            listeners: [.tls(host: "127.0.0.1", port: 0, certificateChainPath: "\(directory)/server-m1.pem",
                             privateKeyPath: "\(directory)/server-m1-key.pem")],
            backend: InMemoryBackend(), eventLoopGroup: MultiThreadedEventLoopGroup.singleton,
            logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }))
        let port = try #require(https.tcpPort)
        let listed = await run(["list-machines", "--no-legend", "--endpoint", "https://localhost:\(port)",
                                "--ca-file", "\(directory)/flotilla-ca.pem"])
        let distrusted = await run(["list-machines", "--no-legend", "--endpoint", "https://localhost:\(port)",
                                    "--ca-file", "\(otherCA)/flotilla-ca.pem"])
        await https.shutdown()
        #expect(listed.status == 0, "\(listed.error)")
        #expect(distrusted.status == 1 && distrusted.error.contains("not signed by a trusted CA"), "\(distrusted.error)")
    }
}
