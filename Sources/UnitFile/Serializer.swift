extension UnitFile {
    /// The canonical form, byte for byte what go-systemd's `unit.Serialize` writes for the same
    /// options (and so what fleet's `UnitFile.Hash()` hashed):
    ///
    ///     [Section]\n
    ///     Name=Value\n      (one line per option, in order)
    ///     \n                (between sections, not after the last)
    ///
    /// Continued values are written as `rawValue`, backslashes and line breaks included, as
    /// fleet stored them. An empty file serialises to no bytes.
    ///
    /// One deliberate difference: a value whose last line ends in an odd number of backslashes
    /// (possible when the source had whitespace after the backslash) gets one trailing space, or
    /// the backslash would join the next line when read back. go-systemd wrote no space, so fleet
    /// stored such units corrupted; their hash differs from fleet's.
    public func serializedBytes() -> [UInt8] {
        var output: [UInt8] = []
        for (index, section) in sections.enumerated() {
            if index > 0 { output.append(SyntaxRules.lineFeed) }
            output.append(SyntaxRules.openBracket)
            output.append(contentsOf: section.name.utf8)
            output.append(SyntaxRules.closeBracket)
            output.append(SyntaxRules.lineFeed)
            for option in section.options {
                output.append(contentsOf: option.name.utf8)
                output.append(SyntaxRules.equals)
                output.append(contentsOf: option.rawValue.utf8)
                if SyntaxRules.endsWithContinuation(option.rawValue.utf8) {
                    output.append(SyntaxRules.space)
                }
                output.append(SyntaxRules.lineFeed)
            }
        }
        return output
    }

    /// The canonical form as text (always valid UTF-8, since every part is).
    public func serialized() -> String {
        String(decoding: serializedBytes(), as: UTF8.self)
    }

    /// SHA-1 of the canonical form: the same value fleet's `UnitFile.Hash()` gives for a unit
    /// submitted to it, so a unit keeps its identity when moved between fleet and Flotilla.
    public var hash: UnitHash {
        UnitHash(digestOf: serializedBytes())
    }
}
