/// Why a request to flotillad failed. Every case says what happened in words a user can act on;
/// `api` carries fleet's error entity (`{"error":{"code":N,"message":"..."}}`) as flotillad sent it.
public enum ClientError: Error, Sendable, Hashable, CustomStringConvertible {
    /// flotillad answered with a non-2xx status.
    case api(status: Int, message: String)
    /// No connection could be made or it broke before the answer was complete.
    case connection(String)
    /// No complete answer within the request's timeout.
    case timeout
    /// The answer was not HTTP, not the expected JSON, or too large.
    case invalidResponse(String)

    /// An endpoint string that cannot be parsed (reported as a connection error: nothing was sent).
    static func invalidEndpoint(_ text: String, reason: String) -> ClientError {
        .connection("invalid endpoint \(text.debugDescription): \(reason)")
    }

    public var description: String {
        switch self {
        case .api(let status, let message):
            return message.isEmpty ? "flotillad answered HTTP \(status)" : "\(message) (HTTP \(status))"
        case .connection(let reason):
            return reason
        case .timeout:
            return "request timed out waiting for flotillad"
        case .invalidResponse(let reason):
            return "invalid response from flotillad: \(reason)"
        }
    }

    /// The HTTP status of an `api` error, nil for the others.
    public var status: Int? {
        if case .api(let status, _) = self { return status }
        return nil
    }
}
