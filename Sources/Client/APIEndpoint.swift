/// Where flotillad's HTTP API listens: a unix socket (the default, /var/run/flotilla.sock), a
/// TCP address (plain HTTP) or an HTTPS address. fleetctl took the same forms in `--endpoint`.
public enum APIEndpoint: Sendable, Hashable, CustomStringConvertible {
    case unix(path: String)
    case tcp(host: String, port: Int)
    /// HTTP over TLS. The server's certificate must name `host` (a DNS name, or an IP address
    /// SAN when `host` is an address) and chain to a trusted CA (`ClientTLS`).
    case https(host: String, port: Int)

    /// The socket flotillad listens on unless configured otherwise.
    public static let defaultSocketPath = "/var/run/flotilla.sock"
    public static let `default` = APIEndpoint.unix(path: defaultSocketPath)

    /// Parses `unix:///var/run/flotilla.sock`, `unix:/path`, `/path` (fleetctl accepted a bare
    /// socket path), `http://host:port`, `http://host` (port 80), `https://host:port` and
    /// `https://host` (port 443). An IPv6 host is written in brackets: `http://[::1]:4002`.
    public init(parsing text: String) throws(ClientError) {
        let trimmed = text.trimmingWhitespace()
        guard !trimmed.isEmpty else { throw .invalidEndpoint(text, reason: "it is empty") }
        if trimmed.hasPrefix("/") {
            self = .unix(path: trimmed)
            return
        }
        if trimmed.hasPrefix("unix:") || trimmed.hasPrefix("file:") {
            var path = Substring(trimmed.drop { $0 != ":" }.dropFirst())
            if path.hasPrefix("//") {
                path = path.dropFirst(2)
                // "unix://var/run/x.sock" names a host "var": the leading slash was forgotten.
                guard path.hasPrefix("/") else {
                    throw .invalidEndpoint(text, reason: "a unix socket path must be absolute, as in unix:///var/run/flotilla.sock")
                }
            }
            guard path.hasPrefix("/"), path.count > 1 else {
                throw .invalidEndpoint(text, reason: "a unix socket path must be absolute, as in unix:///var/run/flotilla.sock")
            }
            self = .unix(path: String(path))
            return
        }
        if trimmed.hasPrefix("https://") {
            let (host, port) = try Self.parseAuthority(trimmed.dropFirst("https://".count), defaultPort: 443, text: text)
            self = .https(host: host, port: port)
            return
        }
        guard trimmed.hasPrefix("http://") else {
            throw .invalidEndpoint(text, reason: "expected unix:///path/to.sock, /path/to.sock, http://host:port or https://host:port")
        }
        let (host, port) = try Self.parseAuthority(trimmed.dropFirst("http://".count), defaultPort: 80, text: text)
        self = .tcp(host: host, port: port)
    }

    /// `host[:port][/]` after the scheme; `text` is the whole endpoint, for the error.
    private static func parseAuthority(_ afterScheme: Substring, defaultPort: Int,
                                       text: String) throws(ClientError) -> (host: String, port: Int) {
        var authority = afterScheme
        if let slash = authority.firstIndex(of: "/") {
            guard authority[slash...].allSatisfy({ $0 == "/" }) else {
                throw .invalidEndpoint(text, reason: "an endpoint has no path")
            }
            authority = authority[..<slash]
        }
        let host: Substring
        var portText: Substring?
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else {
                throw .invalidEndpoint(text, reason: "unterminated IPv6 address")
            }
            host = authority[authority.index(after: authority.startIndex)..<close]
            let rest = authority[authority.index(after: close)...]
            if !rest.isEmpty {
                guard rest.hasPrefix(":") else { throw .invalidEndpoint(text, reason: "unexpected text after the address") }
                portText = rest.dropFirst()
            }
        } else if let colon = authority.lastIndex(of: ":") {
            host = authority[..<colon]
            portText = authority[authority.index(after: colon)...]
        } else {
            host = authority
        }
        guard !host.isEmpty else { throw .invalidEndpoint(text, reason: "the host is missing") }
        var port = defaultPort
        if let portText {
            guard let parsed = Int(portText), (1...65535).contains(parsed) else {
                throw .invalidEndpoint(text, reason: "the port must be a number from 1 to 65535")
            }
            port = parsed
        }
        return (String(host), port)
    }

    /// The endpoint as a user would write it back on the command line.
    public var description: String {
        switch self {
        case .unix(let path): return "unix://\(path)"
        case .tcp(let host, let port):
            return host.contains(":") ? "http://[\(host)]:\(port)" : "http://\(host):\(port)"
        case .https(let host, let port):
            return host.contains(":") ? "https://[\(host)]:\(port)" : "https://\(host):\(port)"
        }
    }

    /// The Host header: a unix socket has no host name, so a fixed one stands in (as fleetctl did).
    var hostHeader: String {
        switch self {
        case .unix: return "localhost"
        case .tcp(let host, let port), .https(let host, let port):
            return host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
        }
    }
}

extension String {
    func trimmingWhitespace() -> String {
        var view = Substring(self)
        while let first = view.first, first.isWhitespace { view = view.dropFirst() }
        while let last = view.last, last.isWhitespace { view = view.dropLast() }
        return String(view)
    }
}
