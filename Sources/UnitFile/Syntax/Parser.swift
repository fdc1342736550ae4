extension UnitFile {
    /// Parses unit file text. See `init(parsing:limits:)` for bytes.
    public init(parsing text: String, limits: UnitFileLimits = .standard) throws(UnitFileError) {
        try self.init(parsing: Array(text.utf8), limits: limits)
    }

    /// Parses a unit file the way systemd's `config_parse()` reads it (systemd.syntax(7)):
    ///
    /// - lines end at `\n`, `\r`, `\r\n` or NUL (`PhysicalLineSplitter`);
    /// - one UTF-8 byte order mark at the start of a line is skipped (systemd skips the first
    ///   it meets; a second one is refused, see `UnitFileError.unexpectedByteOrderMark`);
    /// - a line whose first non-blank character is `#` or `;` is a comment, also in the middle
    ///   of a continued value, where it is skipped;
    /// - a line ending in an odd number of backslashes continues on the next line, the last
    ///   backslash replaced by a space; a blank line or the end of the file ends it;
    /// - `[Name]` opens a section; `Key=Value` assigns, key and value stripped of spaces, tabs
    ///   and line breaks; the first `=` separates them.
    ///
    /// Deviations, all refusals of input systemd would log and skip: an assignment outside any
    /// section, a line without `=`, and `=Value` are errors here. The obsolete `.include`
    /// directive, gone from systemd, is a line without `=`.
    public init(parsing bytes: some Collection<UInt8>, limits: UnitFileLimits = .standard)
        throws(UnitFileError)
    {
        let count = bytes.count
        guard count <= limits.unitFileSizeMax else {
            throw .fileTooLarge(sizeBytes: count, limitBytes: limits.unitFileSizeMax)
        }
        var parser = UnitFileParser(bytes: Array(bytes), limits: limits)
        self = try parser.parse()
    }
}

/// One pass over the physical lines, joining continuations into logical lines and handing
/// each complete logical line to `interpret`.
struct UnitFileParser {
    private let bytes: [UInt8]
    private let limits: UnitFileLimits
    private var builder = SectionBuilder()

    init(bytes: [UInt8], limits: UnitFileLimits) {
        self.bytes = bytes
        self.limits = limits
    }

    /// A line as systemd sees it after joining continuations, with the physical lines it came
    /// from kept for go-systemd's view of the value.
    private struct LogicalLine {
        var text: [UInt8]
        var physicalLines: [ArraySlice<UInt8>]
        let firstLineNumber: Int
    }

    mutating func parse() throws(UnitFileError) -> UnitFile {
        var splitter = PhysicalLineSplitter(bytes)
        var lineNumber = 0
        var byteOrderMarkSeen = false
        var pending: LogicalLine? = nil

        while let range = splitter.next() {
            lineNumber += 1
            var line = bytes[range]
            guard line.count <= limits.lineLengthMax else {
                throw .lineTooLong(line: lineNumber, limitBytes: limits.lineLengthMax)
            }
            if SyntaxRules.startsWithByteOrderMark(line) {
                guard !byteOrderMarkSeen else { throw .unexpectedByteOrderMark(line: lineNumber) }
                byteOrderMarkSeen = true
                line = line.dropFirst(SyntaxRules.byteOrderMark.count)
            }
            if SyntaxRules.isCommentLine(line) { continue }

            // Taken out of `pending`, so the joined text has one owner and each continuation
            // line appends in place: copying it per line made 40,000 lines of `a\` take 12 s.
            var logical: LogicalLine
            if let taken = pending.take() {
                logical = consume taken
                guard logical.text.count + line.count <= limits.lineLengthMax else {
                    throw .lineTooLong(line: lineNumber, limitBytes: limits.lineLengthMax)
                }
                logical.text.append(contentsOf: line)
                logical.physicalLines.append(line)
            } else {
                logical = LogicalLine(
                    text: Array(line), physicalLines: [line], firstLineNumber: lineNumber)
            }

            if SyntaxRules.endsWithContinuation(logical.text) {
                logical.text[logical.text.count - 1] = SyntaxRules.space
                pending = logical
                continue
            }
            pending = nil
            try interpret(logical, endedInContinuationAtEndOfFile: false)
        }
        if let logical = pending {
            try interpret(logical, endedInContinuationAtEndOfFile: true)
        }
        return builder.build()
    }

    /// systemd's `parse_line()` for one logical line.
    private mutating func interpret(_ logical: LogicalLine, endedInContinuationAtEndOfFile: Bool)
        throws(UnitFileError)
    {
        let line = logical.firstLineNumber
        let text = SyntaxRules.stripped(logical.text[...])
        guard let first = text.first, let last = text.last else { return }
        guard String(validating: text, as: UTF8.self) != nil else { throw .invalidUTF8(line: line) }

        if first == SyntaxRules.openBracket {
            guard text.count >= 2, last == SyntaxRules.closeBracket else {
                throw .invalidSectionHeader(line: line)
            }
            let name = text.dropFirst().dropLast()
            guard SyntaxRules.isSafeSectionName(name) else {
                throw .unsafeSectionName(line: line, name: String(decoding: name, as: UTF8.self))
            }
            builder.beginSection(String(decoding: name, as: UTF8.self))
            return
        }

        guard builder.isInSection else { throw .assignmentOutsideSection(line: line) }
        guard let equals = text.firstIndex(of: SyntaxRules.equals) else {
            throw .missingEquals(line: line)
        }
        guard equals != text.startIndex else { throw .missingKey(line: line) }

        // Splitting valid UTF-8 at an ASCII byte leaves valid UTF-8 on both sides.
        let key = String(decoding: SyntaxRules.stripped(text[..<equals]), as: UTF8.self)
        let value = String(decoding: SyntaxRules.stripped(text[(equals + 1)...]), as: UTF8.self)
        var rawValue = value
        if logical.physicalLines.count > 1 || endedInContinuationAtEndOfFile {
            rawValue = Self.goSystemdValue(
                of: logical.physicalLines, endedAtEndOfFile: endedInContinuationAtEndOfFile)
                ?? value
        }
        builder.append(UnitOption(validatedName: key, value: value, rawValue: rawValue))
    }

    /// The value go-systemd's lexer produces for a continued assignment: the physical lines
    /// after the first `=`, joined with line feeds, backslashes kept, surrounding whitespace
    /// trimmed; when the continuation ended at a blank line, with one line feed kept at the end.
    ///
    /// Two deliberate differences from go-systemd, both to keep `parse(serialise(x)) == x`:
    /// comment lines inside the continuation are left out (systemd skips them; go-systemd kept
    /// them and then failed on the next line), and a file ending inside a continuation is read
    /// as if it ended with a line break (go-systemd kept a bare trailing backslash then, which
    /// would swallow the next line once re-serialised).
    private static func goSystemdValue(
        of physicalLines: [ArraySlice<UInt8>], endedAtEndOfFile: Bool
    ) -> String? {
        var joined: [UInt8] = []
        for (index, line) in physicalLines.enumerated() {
            if index > 0 { joined.append(SyntaxRules.lineFeed) }
            joined.append(contentsOf: line)
        }
        guard let equals = joined.firstIndex(of: SyntaxRules.equals) else { return nil }
        let trimmed = SyntaxRules.stripped(joined[(equals + 1)...])
        let endedAtBlankLine =
            physicalLines.count > 1
            && (physicalLines.last?.allSatisfy(SyntaxRules.isWhitespace) ?? false)
        var result = Array(trimmed)
        if endedAtBlankLine || endedAtEndOfFile {
            result.append(SyntaxRules.lineFeed)
        }
        return String(validating: result, as: UTF8.self)
    }
}

/// Collects options under the current section, merging repeated section headers.
private struct SectionBuilder {
    private var currentSection: String?
    private var names: [String] = []
    private var optionsBySection: [[UnitOption]] = []
    private var indexByName: [String: Int] = [:]

    var isInSection: Bool { currentSection != nil }

    mutating func beginSection(_ name: String) {
        currentSection = name
    }

    mutating func append(_ option: UnitOption) {
        guard let name = currentSection else { return }
        if let index = indexByName[name] {
            optionsBySection[index].append(option)
        } else {
            indexByName[name] = names.count
            names.append(name)
            optionsBySection.append([option])
        }
    }

    func build() -> UnitFile {
        UnitFile(
            sections: zip(names, optionsBySection).map {
                UnitSection(validatedName: $0.0, options: $0.1)
            })
    }
}
