/// Byte-level rules of systemd's configuration syntax (systemd.syntax(7), conf-parser.c),
/// shared by the parser, the serialiser and the validation of values built in code.
enum SyntaxRules {
    static let space: UInt8 = 0x20
    static let tab: UInt8 = 0x09
    static let lineFeed: UInt8 = 0x0A
    static let carriageReturn: UInt8 = 0x0D
    static let nul: UInt8 = 0x00
    static let backslash: UInt8 = 0x5C
    static let equals: UInt8 = 0x3D
    static let openBracket: UInt8 = 0x5B
    static let closeBracket: UInt8 = 0x5D
    static let hash: UInt8 = 0x23
    static let semicolon: UInt8 = 0x3B
    static let doubleQuote: UInt8 = 0x22
    static let singleQuote: UInt8 = 0x27
    /// UTF-8 encoding of U+FEFF.
    static let byteOrderMark: [UInt8] = [0xEF, 0xBB, 0xBF]

    /// systemd's `WHITESPACE`: what `strstrip()` removes around keys and values. Deliberately
    /// ASCII only; Go's `TrimSpace` (go-systemd) also strips Unicode spaces such as U+00A0, so a
    /// value ending in one hashes differently under fleet. systemd is the authority here.
    static func isWhitespace(_ byte: UInt8) -> Bool {
        byte == space || byte == tab || byte == lineFeed || byte == carriageReturn
    }

    /// systemd's `COMMENTS`.
    static func isCommentStart(_ byte: UInt8) -> Bool {
        byte == hash || byte == semicolon
    }

    /// True when the first non-blank byte starts a comment. systemd tests this on every
    /// physical line before joining continuations, which is why a comment line inside a
    /// continued value is skipped rather than becoming part of it.
    static func isCommentLine(_ line: ArraySlice<UInt8>) -> Bool {
        guard let first = line.first(where: { !isWhitespace($0) }) else { return false }
        return isCommentStart(first)
    }

    static func startsWithByteOrderMark(_ line: ArraySlice<UInt8>) -> Bool {
        line.starts(with: byteOrderMark)
    }

    /// `strstrip()`: the slice without leading and trailing whitespace.
    static func stripped(_ bytes: ArraySlice<UInt8>) -> ArraySlice<UInt8> {
        guard let first = bytes.firstIndex(where: { !isWhitespace($0) }),
            let last = bytes.lastIndex(where: { !isWhitespace($0) })
        else { return bytes[bytes.endIndex..<bytes.endIndex] }
        return bytes[first...last]
    }

    /// True when the bytes end in an odd run of backslashes: systemd's test for a line that
    /// continues on the next one (an even run is escaped backslashes and ends the line).
    static func endsWithContinuation(_ bytes: some BidirectionalCollection<UInt8>) -> Bool {
        var run = 0
        for byte in bytes.reversed() {
            guard byte == backslash else { break }
            run += 1
        }
        return run % 2 == 1
    }

    /// systemd's `string_is_safe()`, applied to section names: no control characters, no
    /// quotes, no backslash.
    static func isSafeSectionName(_ bytes: some Sequence<UInt8>) -> Bool {
        bytes.allSatisfy { byte in
            byte >= 0x20 && byte != 0x7F && byte != backslash && byte != doubleQuote
                && byte != singleQuote
        }
    }

    /// An option name that serialises as `Name=` and parses back to itself.
    static func isValidOptionName(_ name: String) -> Bool {
        let bytes = Array(name.utf8)
        guard let first = bytes.first, let last = bytes.last else { return false }
        if isWhitespace(first) || isWhitespace(last) { return false }
        // A leading '#' or ';' would make the line a comment, '[' a section header, and a
        // byte order mark is stripped from the first line that starts with one.
        if isCommentStart(first) || first == openBracket { return false }
        if bytes.starts(with: byteOrderMark) { return false }
        return !bytes.contains { $0 == equals || $0 == lineFeed || $0 == carriageReturn || $0 == nul }
    }

    /// A one-line value that serialises after `Name=` and parses back to itself. A trailing
    /// odd backslash is allowed: the serialiser protects it (see `Serializer`).
    static func isValidSingleLineValue(_ value: String) -> Bool {
        let bytes = Array(value.utf8)
        if let first = bytes.first, isWhitespace(first) { return false }
        if let last = bytes.last, isWhitespace(last) { return false }
        return !bytes.contains { $0 == lineFeed || $0 == carriageReturn || $0 == nul }
    }
}
