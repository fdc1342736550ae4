/// Splits bytes into physical lines exactly as systemd's `read_line()` does (src/basic/fileio.c).
///
/// `\n`, `\r` and NUL all end a line, and a run of them counts as one line ending as long as no
/// kind repeats and nothing follows a NUL: so `\r\n`, `\n\r` and `\r\n\0` are one ending each,
/// while `\n\n` is an empty line. That makes CRLF files, old Mac files and stray NULs read the
/// way systemd reads them, and keeps our line numbers equal to systemd's.
struct PhysicalLineSplitter {
    private let bytes: [UInt8]
    private var position = 0

    init(_ bytes: [UInt8]) {
        self.bytes = bytes
    }

    /// The range of the next line's content (line ending excluded), or nil at the end.
    mutating func next() -> Range<Int>? {
        guard position < bytes.count else { return nil }
        let start = position
        var end = start
        while end < bytes.count, Self.endOfLineKind(bytes[end]) == 0 {
            end += 1
        }
        position = Self.endOfLineMarkerEnd(in: bytes, from: end)
        return start..<end
    }

    private static let lineFeedKind: UInt8 = 1
    private static let carriageReturnKind: UInt8 = 2
    private static let nulKind: UInt8 = 4

    private static func endOfLineKind(_ byte: UInt8) -> UInt8 {
        switch byte {
        case SyntaxRules.lineFeed: return lineFeedKind
        case SyntaxRules.carriageReturn: return carriageReturnKind
        case SyntaxRules.nul: return nulKind
        default: return 0
        }
    }

    /// Consumes one line ending starting at `index`: each kind at most once, none after a NUL.
    private static func endOfLineMarkerEnd(in bytes: [UInt8], from index: Int) -> Int {
        var seenKinds: UInt8 = 0
        var cursor = index
        while cursor < bytes.count {
            let kind = endOfLineKind(bytes[cursor])
            if kind == 0 || seenKinds & nulKind != 0 || seenKinds & kind != 0 { break }
            seenKinds |= kind
            cursor += 1
        }
        return cursor
    }
}
