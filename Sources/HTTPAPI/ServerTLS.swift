#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import NIOSSL

/// The TLS side of a `.tls` listener: its certificate chain and key, read from PEM files once,
/// when the server starts. Every failure names the file and says what it should hold, because
/// the person reading it is an operator with a configuration file open.
enum ServerTLS {
    /// The PEM files of a certificate chain hold few certificates; a file far larger than this
    /// is not one (and is not read whole into memory).
    static let pemFileBytesMax = 1 << 20

    static func makeContext(for listener: APIListener) throws(HTTPAPIServerError) -> NIOSSLContext? {
        switch listener {
        case .unix, .tcp, .inheritedSocket:
            return nil
        case .tls(_, _, let certificateChainPath, let privateKeyPath, let clientCAPath):
            return try makeContext(certificateChainPath: certificateChainPath, privateKeyPath: privateKeyPath, clientCAPath: clientCAPath,
                                   listener: listener)
        }
    }

    private static func makeContext(certificateChainPath: String, privateKeyPath: String, clientCAPath: String?,
                                    listener: APIListener) throws(HTTPAPIServerError) -> NIOSSLContext {
        func failure(_ reason: String) -> HTTPAPIServerError { HTTPAPIServerError(listener: listener, reason: reason) }

        let chainBytes = try readPEMFile(certificateChainPath, what: "certificate chain", listener: listener)
        let chain: [NIOSSLCertificate]
        do {
            chain = try NIOSSLCertificate.fromPEMBytes(chainBytes)
        } catch {
            throw failure("the certificate chain file \(certificateChainPath) is not PEM certificates (\(error)); expected -----BEGIN CERTIFICATE----- blocks, the server's certificate first")
        }
        guard !chain.isEmpty else {
            throw failure("the certificate chain file \(certificateChainPath) holds no certificate; expected -----BEGIN CERTIFICATE----- blocks, the server's certificate first")
        }
        let keyBytes = try readPEMFile(privateKeyPath, what: "private key", listener: listener)
        let key: NIOSSLPrivateKey
        do {
            key = try NIOSSLPrivateKey(bytes: keyBytes, format: .pem)
        } catch {
            throw failure("the private key file \(privateKeyPath) is not an unencrypted PEM private key (\(error)); expected -----BEGIN PRIVATE KEY----- (or RSA/EC PRIVATE KEY)")
        }
        var configuration = TLSConfiguration.makeServerConfiguration(certificateChain: chain.map { .certificate($0) },
                                                                     privateKey: .privateKey(key))
        if let clientCAPath {
            let authorities: [NIOSSLCertificate]
            do {
                authorities = try NIOSSLCertificate.fromPEMBytes(try readPEMFile(clientCAPath, what: "client CA", listener: listener))
            } catch let error as HTTPAPIServerError {
                throw error
            } catch {
                throw failure("the client CA file \(clientCAPath) is not PEM certificates (\(error))")
            }
            guard !authorities.isEmpty else { throw failure("the client CA file \(clientCAPath) holds no certificate") }
            // Requested, not required: a caller without one presents an ACL token instead.
            configuration.trustRoots = .certificates(authorities)
            configuration.certificateVerification = .optionalVerification
        }
        do {
            return try NIOSSLContext(configuration: configuration)
        } catch {
            throw failure("TLS cannot use the certificate \(certificateChainPath) with the key \(privateKeyPath) (\(error)); check that the key is the certificate's")
        }
    }

    /// The bytes of a PEM file, or an error saying why they cannot be had.
    private static func readPEMFile(_ path: String, what: String, listener: APIListener) throws(HTTPAPIServerError) -> [UInt8] {
        guard let file = fopen(path, "rb") else {
            let reason = String(cString: strerror(errno))
            throw HTTPAPIServerError(listener: listener, reason: "cannot read the \(what) file \(path): \(reason)")
        }
        defer { fclose(file) }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 64 << 10)
        while true {
            let count = buffer.withUnsafeMutableBytes { fread($0.baseAddress, 1, $0.count, file) }
            if count == 0 { break }
            bytes.append(contentsOf: buffer[..<count])
            guard bytes.count <= pemFileBytesMax else {
                throw HTTPAPIServerError(listener: listener,
                                         reason: "the \(what) file \(path) is larger than \(pemFileBytesMax) bytes; it is not a PEM \(what)")
            }
        }
        guard ferror(file) == 0 else {
            throw HTTPAPIServerError(listener: listener, reason: "cannot read the \(what) file \(path): read error (is it a directory?)")
        }
        return bytes
    }
}
