import Client
import NIOCore

/// The endpoint from `--endpoint`, else FLOTILLACTL_ENDPOINT, else FLEETCTL_ENDPOINT (so a
/// fleetctl user's environment keeps working), else the default socket.
public func resolveEndpoint(flag: String?, environment: [String: String]) throws(ClientError) -> APIEndpoint {
    for candidate in [flag, environment["FLOTILLACTL_ENDPOINT"], environment["FLEETCTL_ENDPOINT"]] {
        if let candidate, !candidate.isEmpty {
            // fleetctl allowed a comma-separated list and used the first.
            let first = candidate.split(separator: ",").first.map(String.init) ?? candidate
            return try APIEndpoint(parsing: first)
        }
    }
    return .default
}

/// The TLS of an https endpoint: the CA file from `--ca-file`, else FLOTILLACTL_CA_FILE, else
/// FLEETCTL_CA_FILE (fleetctl's name), nil meaning the system's CAs; and a client certificate
/// from `--cert-file` and `--key-file` (or FLOTILLACTL_/FLEETCTL_CERT_FILE and _KEY_FILE), given
/// together. Nil when nothing is given.
public func resolveClientTLS(caFileFlag: String?, certificateFileFlag: String? = nil, keyFileFlag: String? = nil,
                             environment: [String: String]) -> Result<ClientTLS?, CLIError> {
    func first(_ flag: String?, _ name: String) -> String? {
        [flag, environment["FLOTILLACTL_\(name)"], environment["FLEETCTL_\(name)"]].compactMap { $0 }.first { !$0.isEmpty }
    }
    let ca = first(caFileFlag, "CA_FILE")
    let certificate = first(certificateFileFlag, "CERT_FILE")
    let key = first(keyFileFlag, "KEY_FILE")
    guard (certificate == nil) == (key == nil) else {
        return .failure(CLIError("--cert-file and --key-file go together (the client certificate and its key)"))
    }
    guard ca != nil || certificate != nil else { return .success(nil) }
    return .success(ClientTLS(caFilePath: ca, certificateFilePath: certificate, keyFilePath: key))
}

/// Seconds from `--request-timeout`, FLOTILLACTL_REQUEST_TIMEOUT or FLEETCTL_REQUEST_TIMEOUT;
/// fleetctl's default was 3 s, Flotilla's is 10 s (a forwarded write may wait for a leader).
public func resolveRequestTimeout(flag: Double?, environment: [String: String]) -> Result<TimeAmount, CLIError> {
    var seconds = 10.0
    if let flag {
        seconds = flag
    } else if let text = environment["FLOTILLACTL_REQUEST_TIMEOUT"] ?? environment["FLEETCTL_REQUEST_TIMEOUT"], !text.isEmpty {
        guard let parsed = Double(text) else { return .failure(CLIError("invalid request timeout \(text.debugDescription): expected seconds")) }
        seconds = parsed
    }
    guard seconds > 0, seconds <= 86_400 else {
        return .failure(CLIError("the request timeout must be more than 0 and at most 86400 seconds, got \(seconds)"))
    }
    return .success(.nanoseconds(Int64(seconds * 1_000_000_000)))
}

/// A failure already worded for the user.
public struct CLIError: Error, Hashable, Sendable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
