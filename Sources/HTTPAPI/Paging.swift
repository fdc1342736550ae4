/// fleet's paging of long lists: a page of `pageItemsMax` items and, when more remain, an
/// opaque `nextPageToken` that the client sends back unchanged.
///
/// The token names the offset of the next page's first item, base64url-encoded with a version
/// tag so that it can change form later and an old token is refused with 400 rather than
/// misread. Like fleet's, it indexes the list as it is at the time of each request: an item
/// inserted or removed between two pages shifts the rest by one. Deviation from fleet: fleet
/// also emitted a token when the last page was exactly full (its next page was empty); this
/// emits one only when another item exists.
struct PageToken: Hashable, Sendable {
    /// The index of the first item of the page.
    var offset: Int

    static let first = PageToken(offset: 0)
    private static let tag = "flotilla-page-v1:"
    /// Offsets beyond this are refused: no list is that long, and it keeps arithmetic safe.
    static let offsetMax = 100_000_000

    var encoded: String { Base64URL.encode(Array((Self.tag + String(offset)).utf8)) }

    init(offset: Int) {
        precondition(offset >= 0 && offset <= Self.offsetMax, "page offset out of range: \(offset)")
        self.offset = offset
    }

    /// Reads `?nextPageToken=`; nil (the first page) when absent.
    static func parse(_ query: QueryParameters) throws(APIError) -> PageToken {
        guard let text = try query.single("nextPageToken") else { return .first }
        let invalid = APIError.badRequest("nextPageToken is not a token this server issued: pass back the value of a previous page's nextPageToken")
        guard let bytes = Base64URL.decode(text), let decoded = String(validating: bytes, as: UTF8.self),
              decoded.hasPrefix(tag) else { throw invalid }
        let digits = decoded.dropFirst(tag.count)
        guard !digits.isEmpty, digits.count <= 9, digits.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }),
              let offset = Int(digits), offset > 0, offset <= offsetMax else { throw invalid }
        return PageToken(offset: offset)
    }

    /// The items of this page and the token of the next page, if any item follows it.
    func page<Item>(of items: [Item], size: Int) -> (items: ArraySlice<Item>, next: PageToken?) {
        guard offset < items.count else { return ([], nil) }
        let end = min(items.count, offset + size)
        let next = end < items.count ? PageToken(offset: end) : nil
        return (items[offset..<end], next)
    }
}

/// base64url without padding (RFC 4648 section 5); decoding also accepts padding.
enum Base64URL {
    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)

    static func encode(_ bytes: [UInt8]) -> String {
        var output: [UInt8] = []
        output.reserveCapacity((bytes.count + 2) / 3 * 4)
        var index = 0
        while index < bytes.count {
            let remaining = bytes.count - index
            let b0 = UInt32(bytes[index])
            let b1 = remaining > 1 ? UInt32(bytes[index + 1]) : 0
            let b2 = remaining > 2 ? UInt32(bytes[index + 2]) : 0
            let group = b0 << 16 | b1 << 8 | b2
            output.append(alphabet[Int(group >> 18 & 63)])
            output.append(alphabet[Int(group >> 12 & 63)])
            if remaining > 1 { output.append(alphabet[Int(group >> 6 & 63)]) }
            if remaining > 2 { output.append(alphabet[Int(group & 63)]) }
            index += 3
        }
        return String(decoding: output, as: UTF8.self)
    }

    static func decode(_ text: String) -> [UInt8]? {
        var values: [UInt8] = []
        for byte in text.utf8 {
            if byte == UInt8(ascii: "=") { break }
            guard let value = alphabet.firstIndex(of: byte) else { return nil }
            values.append(UInt8(value))
        }
        guard values.count % 4 != 1 else { return nil }
        var output: [UInt8] = []
        var index = 0
        while index < values.count {
            let chunk = values[index..<min(index + 4, values.count)]
            var group: UInt32 = 0
            for (position, value) in chunk.enumerated() { group |= UInt32(value) << (18 - 6 * position) }
            output.append(UInt8(group >> 16 & 0xFF))
            if chunk.count > 2 { output.append(UInt8(group >> 8 & 0xFF)) }
            if chunk.count > 3 { output.append(UInt8(group & 0xFF)) }
            index += 4
        }
        return output
    }
}
