import Foundation

/// A throwaway certificate authority and a server certificate it signed, made with
/// /usr/bin/openssl in a fresh temporary directory (Debian's `openssl` package; .ci/run installs
/// it). The server certificate names `localhost` and `127.0.0.1` in its subjectAltName, so a
/// client may connect by either. A second, unrelated CA stands for "some other CA" in tests of
/// a client that does not trust the server. Everything is P-256 and valid for two days.
public struct TestCertificates: Sendable {
    public let directory: String
    /// The PEM certificate of the CA that signed the server's certificate.
    public var caPath: String { directory + "/ca.pem" }
    /// A CA that signed nothing here.
    public var otherCAPath: String { directory + "/other-ca.pem" }
    public var serverCertificatePath: String { directory + "/server.pem" }
    public var serverKeyPath: String { directory + "/server.key" }

    public struct GenerationFailure: Error, CustomStringConvertible {
        public var arguments: [String]
        public var standardError: String
        public var description: String {
            "openssl \(arguments.joined(separator: " ")) failed: \(standardError) (is Debian's openssl package installed?)"
        }
    }

    public static let opensslPath = "/usr/bin/openssl"

    /// Makes the files; `remove()` deletes them. openssl runs on a thread of its own: waiting
    /// for it on the cooperative pool held one of its two threads on CI while openssl shared the
    /// cores with the whole suite, and every async test of every suite waited with it.
    public static func generate() async throws -> TestCertificates {
        try await onDedicatedThread { try generateBlocking() }
    }

    private static func generateBlocking() throws -> TestCertificates {
        let directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("flotilla-tls-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let certificates = TestCertificates(directory: directory)
        try certificates.makeFiles()
        return certificates
    }

    public func remove() {
        try? FileManager.default.removeItem(atPath: directory)
    }

    private func makeFiles() throws {
        let curve = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        for (name, subject) in [("ca", "/CN=Flotilla Test CA"), ("other-ca", "/CN=Flotilla Other CA")] {
            try openssl(["req", "-x509"] + curve + [
                "-keyout", "\(directory)/\(name).key", "-out", "\(directory)/\(name).pem", "-days", "2", "-subj", subject,
                "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
            ])
        }
        try openssl(["req", "-new"] + curve + [
            "-keyout", serverKeyPath, "-out", "\(directory)/server.csr", "-subj", "/CN=localhost",
        ])
        let extensions = """
            subjectAltName=DNS:localhost,IP:127.0.0.1
            basicConstraints=CA:FALSE
            keyUsage=critical,digitalSignature
            extendedKeyUsage=serverAuth

            """
        try extensions.write(toFile: "\(directory)/server.ext", atomically: true, encoding: .utf8)
        try openssl([
            "x509", "-req", "-in", "\(directory)/server.csr", "-CA", caPath, "-CAkey", "\(directory)/ca.key",
            "-set_serial", "2", "-days", "2", "-extfile", "\(directory)/server.ext", "-out", serverCertificatePath,
        ])
    }

    /// Through `ChildProcess` (posix_spawn and waitpid): Foundation's Process was seen not to
    /// notice a child's exit inside swift-testing on this toolchain.
    private func openssl(_ arguments: [String]) throws {
        let result: ChildProcess.Result
        do {
            result = try ChildProcess.run([Self.opensslPath] + arguments, timeoutSeconds: 120)
        } catch {
            throw GenerationFailure(arguments: arguments, standardError: "\(error)")
        }
        guard result.status == 0 else {
            throw GenerationFailure(arguments: arguments, standardError: result.standardError)
        }
    }
}
