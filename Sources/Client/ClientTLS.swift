#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import NIOCore
import NIOSSL

/// How a `FlotillaClient` decides to trust the server of an `https` endpoint. The server's
/// certificate must chain to a trusted CA and name the endpoint's host (a DNS name, or an IP
/// address SAN when the host is an address); there is no switch to skip either check. A client
/// certificate (fleetctl's --cert-file and --key-file; a peer's own certificate on the peer
/// port) is presented when the server asks for one.
public struct ClientTLS: Sendable, Hashable {
    /// A PEM file of CA certificates to trust instead of the system's roots (fleetctl's
    /// --ca-file); nil trusts the system's roots.
    public var caFilePath: String?
    /// The client's certificate chain (PEM, its own certificate first) and its unencrypted PEM
    /// private key: both or neither.
    public var certificateFilePath: String?
    public var keyFilePath: String?

    public init(caFilePath: String? = nil, certificateFilePath: String? = nil, keyFilePath: String? = nil) {
        precondition((certificateFilePath == nil) == (keyFilePath == nil), "a client certificate needs its key, and a key its certificate")
        self.caFilePath = caFilePath
        self.certificateFilePath = certificateFilePath
        self.keyFilePath = keyFilePath
    }

    /// A CA file far larger than this is not a bundle of CA certificates (the system's whole
    /// bundle is about 200 KiB).
    static let caFileBytesMax = 4 << 20

    /// The TLS context for `endpoint`, or the reason there is none. Built once per client: the
    /// CA file is read here, so a missing or bad file fails every request with the same clear
    /// error rather than a handshake failure.
    func makeContext(endpoint: APIEndpoint) -> Result<NIOSSLContext, ClientError> {
        var configuration = TLSConfiguration.makeClientConfiguration()
        if let caFilePath {
            switch Self.readCertificates(caFilePath) {
            case .success(let certificates): configuration.trustRoots = .certificates(certificates)
            case .failure(let error): return .failure(error)
            }
        }
        if let certificateFilePath, let keyFilePath {
            switch Self.readCertificates(certificateFilePath, what: "certificate") {
            case .success(let chain): configuration.certificateChain = chain.map { .certificate($0) }
            case .failure(let error): return .failure(error)
            }
            do {
                configuration.privateKey = .privateKey(try NIOSSLPrivateKey(file: keyFilePath, format: .pem))
            } catch {
                return .failure(.connection("the key file \(keyFilePath) is not a readable unencrypted PEM private key (\(error))"))
            }
        }
        do {
            return .success(try NIOSSLContext(configuration: configuration))
        } catch {
            return .failure(.connection("cannot set up TLS for \(endpoint): \(error)"))
        }
    }

    /// `what` names the file in errors: "CA" or "certificate".
    private static func readCertificates(_ path: String, what: String = "CA") -> Result<[NIOSSLCertificate], ClientError> {
        guard let bytes = readFile(path) else {
            return .failure(.connection("cannot read the \(what) file \(path): \(lastErrorDescription())"))
        }
        guard bytes.count <= caFileBytesMax else {
            return .failure(.connection("the \(what) file \(path) is larger than \(caFileBytesMax) bytes; it is not PEM certificates"))
        }
        let certificates: [NIOSSLCertificate]
        do {
            certificates = try NIOSSLCertificate.fromPEMBytes(bytes)
        } catch {
            return .failure(.connection("the \(what) file \(path) is not PEM certificates (\(error)); expected -----BEGIN CERTIFICATE----- blocks"))
        }
        guard !certificates.isEmpty else {
            return .failure(.connection("the \(what) file \(path) holds no certificate; expected -----BEGIN CERTIFICATE----- blocks"))
        }
        return .success(certificates)
    }

    /// At most `caFileBytesMax + 1` bytes of the file, or nil with `errno` set.
    private static func readFile(_ path: String) -> [UInt8]? {
        guard let file = fopen(path, "rb") else { return nil }
        defer { fclose(file) }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 64 << 10)
        while bytes.count <= caFileBytesMax {
            let count = buffer.withUnsafeMutableBytes { fread($0.baseAddress, 1, $0.count, file) }
            if count == 0 { break }
            bytes.append(contentsOf: buffer[..<count])
        }
        if ferror(file) != 0 {
            errno = EISDIR
            return nil
        }
        return bytes
    }

    private static func lastErrorDescription() -> String { String(cString: strerror(errno)) }

    /// The SNI and verification name for `host`: nil for an IP address (TLS forbids addresses in
    /// SNI; NIOSSL then checks the certificate's IP address SANs against the connected address).
    static func serverHostname(_ host: String) -> String? {
        (try? SocketAddress(ipAddress: host, port: 0)) == nil ? host : nil
    }

    /// The words for a failed handshake: what went wrong and what to do about it.
    static func describeHandshakeFailure(_ error: any Error, endpoint: APIEndpoint) -> String {
        let detail = "\(error)"
        let advice: String
        if detail.contains("CERTIFICATE_VERIFY_FAILED") {
            advice = "the server's certificate is not signed by a trusted CA; give the CA that signed it (FlotillaClient's ClientTLS.caFilePath, flotillactl --ca-file)"
        } else if let extra = error as? NIOSSLExtraError, extra == .failedToValidateHostname {
            advice = "the server's certificate does not name the host of \(endpoint); connect by a name or address in the certificate's subjectAltName"
        } else if detail.contains("WRONG_VERSION_NUMBER") || detail.contains("eofDuringHandshake") || detail.contains("EOF during handshake") {
            advice = "the server did not answer TLS; is it serving plain http:// on that port?"
        } else {
            advice = "the TLS handshake failed"
        }
        return "TLS with flotillad at \(endpoint) failed: \(advice) (\(detail))"
    }
}
