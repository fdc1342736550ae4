/// One HTTP answer as received: what a proxy needs to pass it on unchanged.
public struct RawResponse: Sendable, Hashable {
    public var status: Int
    /// The Content-Type header, if any.
    public var contentType: String?
    public var body: [UInt8]

    public init(status: Int, contentType: String?, body: [UInt8]) {
        self.status = status
        self.contentType = contentType
        self.body = body
    }

    public var isSuccess: Bool { (200..<300).contains(status) }
}
