/// The scheduling requirements in a unit's `[X-Fleet]` section, read with fleet's meaning
/// (fleet job/job.go, api/units.go, Documentation/unit-files-and-scheduling.md) for one unit
/// name, specifiers expanded.
///
/// How values are read:
/// - every value is split into words (`ValueTokenizer`), then `%n %N %p %i %%` are expanded
///   (`FleetSpecifiers`) with the name of the unit being scheduled, so templates must be
///   evaluated for each instance, as fleet did;
/// - repeated keys add words, in file order; an empty assignment (`Conflicts=`) clears what
///   came before for that option, as systemd does for list settings (fleet kept an empty word,
///   which for `MachineID=` made the unit unschedulable);
/// - `Global=`: the last word wins, as in fleet and systemd;
/// - `MachineMetadata`: each word is `key=value`; several values for one key mean any of them,
///   different keys must all match.
///
/// Refused combinations, checked in fleet's order, after refusing a `MachineOf` unit that
/// matches one of the unit's `Conflicts` or `Replaces` globs: `MachineID` with `MachineOf`,
/// `Conflicts`, `Global` or `Replaces`; `Global` with `MachineOf` or `Replaces`; `Conflicts`
/// with `Replaces`. `Global` with `Conflicts` is accepted, as fleet 1.0 does: its functional test
/// TestScheduleGlobalConflicts starts two global units that conflict with each other and expects
/// the first on every machine (the scheduler's `admittedGlobalUnits`). A glob matching the
/// unit's own name never conflicts with the unit itself.
public struct FleetOptions: Hashable, Sendable {
    /// The section fleet reads.
    public static let sectionName = "X-Fleet"
    /// The longest value, and the longest word after expanding specifiers, in bytes.
    /// Machine IDs, unit names, globs and metadata pairs are all far shorter.
    public static let valueLengthMax = 4096

    /// The machine the unit must run on, if any.
    public let machineID: String?
    /// Units next to which this one must run, in file order, without repeats.
    public let machineOf: [UnitName]
    /// Metadata requirements, sorted by key.
    public let machineMetadata: [MachineMetadataRequirement]
    /// Globs naming units this one must not share a machine with, in file order.
    public let conflicts: [Glob]
    /// Globs naming units this one pushes off its machine, in file order.
    public let replaces: [Glob]
    /// Whether the unit runs on every machine whose metadata matches.
    public let isGlobal: Bool

    /// No requirements: the unit may run anywhere.
    public static let unconstrained = FleetOptions(
        machineID: nil, machineOf: [], machineMetadata: [], conflicts: [], replaces: [],
        isGlobal: false)

    /// Reads and validates the `[X-Fleet]` section of `unitFile` for the unit `unitName`.
    public init(unitFile: UnitFile, unitName: UnitName) throws(FleetOptionsError) {
        let words = try Self.collectWords(
            unitFile.section(named: Self.sectionName)?.options ?? [], unitName: unitName)
        let options = FleetOptions(
            machineID: try Self.machineID(from: words[.machineID] ?? []),
            machineOf: try Self.unitNames(from: words[.machineOf] ?? []),
            machineMetadata: try Self.metadata(from: words[.machineMetadata] ?? []),
            conflicts: try Self.globs(from: words[.conflicts] ?? []),
            replaces: try Self.globs(from: words[.replaces] ?? []),
            isGlobal: try Self.global(from: words[.global] ?? []))
        try options.validate(for: unitName)
        self = options
    }

    private init(
        machineID: String?, machineOf: [UnitName], machineMetadata: [MachineMetadataRequirement],
        conflicts: [Glob], replaces: [Glob], isGlobal: Bool
    ) {
        self.machineID = machineID
        self.machineOf = machineOf
        self.machineMetadata = machineMetadata
        self.conflicts = conflicts
        self.replaces = replaces
        self.isGlobal = isGlobal
    }

    /// Whether a machine with this metadata meets every metadata requirement (fleet's
    /// `machine.HasMetadata`, see `MetadataMatcher`).
    public func isSatisfied(byMachineMetadata metadata: [String: String]) -> Bool {
        MetadataMatcher(machineMetadata).isSatisfied(by: metadata)
    }

    /// A word of an `[X-Fleet]` value with the key it was written under, for error messages.
    private struct Word {
        let key: String
        let text: String
    }

    private static func collectWords(_ options: [UnitOption], unitName: UnitName)
        throws(FleetOptionsError) -> [FleetOptionName: [Word]]
    {
        var words: [FleetOptionName: [Word]] = [:]
        for option in options {
            guard let name = FleetOptionName(key: option.name) else {
                throw .unknownOption(key: option.name)
            }
            guard option.value.utf8.count <= valueLengthMax else {
                throw .valueTooLong(key: option.name, limitBytes: valueLengthMax)
            }
            if option.value.isEmpty {
                words[name] = []
                continue
            }
            let split: [String]
            do {
                split = try ValueTokenizer.words(of: option.value)
            } catch {
                throw .unterminatedQuote(key: option.name)
            }
            for text in split {
                let expanded = FleetSpecifiers.expand(text, for: unitName)
                guard !expanded.isEmpty else { throw .emptyValue(key: option.name) }
                guard expanded.utf8.count <= valueLengthMax else {
                    throw .valueTooLong(key: option.name, limitBytes: valueLengthMax)
                }
                words[name, default: []].append(Word(key: option.name, text: expanded))
            }
        }
        return words
    }

    private static func machineID(from words: [Word]) throws(FleetOptionsError) -> String? {
        let distinct = uniqued(words.map(\.text))
        guard distinct.count <= 1 else { throw .conflictingMachineIDs(distinct) }
        return distinct.first
    }

    private static func unitNames(from words: [Word]) throws(FleetOptionsError) -> [UnitName] {
        var names: [UnitName] = []
        for word in words {
            do {
                names.append(try UnitName(word.text))
            } catch {
                throw .invalidUnitName(key: word.key, value: word.text, reason: error)
            }
        }
        return uniqued(names)
    }

    /// The most `Conflicts=` (or `Replaces=`) patterns of one unit. Every unit placed on a
    /// machine is matched against each pattern of the units there, so the count bounds what one
    /// unit can make every scheduling decision on its machine cost (with `Glob`'s bound per match).
    public static let patternsMax = 64

    private static func globs(from words: [Word]) throws(FleetOptionsError) -> [Glob] {
        let distinct = Set(words.map(\.text))
        if distinct.count > patternsMax, let key = words.first?.key {
            throw .tooManyPatterns(key: key, count: distinct.count, limit: patternsMax)
        }
        var globs: [Glob] = []
        for word in words {
            do {
                globs.append(try Glob(word.text))
            } catch {
                throw .invalidPattern(key: word.key, pattern: word.text, reason: error)
            }
        }
        return uniqued(globs)
    }

    private static func global(from words: [Word]) throws(FleetOptionsError) -> Bool {
        var isGlobal = false
        for word in words {
            switch word.text.lowercased() {
            case "true", "yes", "1", "on", "t": isGlobal = true
            case "false", "no", "0", "off", "f", "n": isGlobal = false
            default: throw .invalidBoolean(key: word.key, value: word.text)
            }
        }
        return isGlobal
    }

    private static func metadata(from words: [Word]) throws(FleetOptionsError)
        -> [MachineMetadataRequirement]
    {
        var valuesByKey: [String: [String]] = [:]
        for word in words {
            guard let (key, value) = metadataPair(word.text), !key.isEmpty, !value.isEmpty,
                  value.count > comparisonOperatorLength(value) else {
                throw .invalidMachineMetadata(key: word.key, value: word.text)
            }
            valuesByKey[key, default: []].append(value)
        }
        // Dictionary order is seeded per process; sort so equal units compare and print equal.
        return valuesByKey.keys.sorted().map { key in
            MachineMetadataRequirement(key: key, allowedValues: uniqued(valuesByKey[key] ?? []))
        }
    }

    /// fleet 1.0's split of a `MachineMetadata` word: at the first of its comparison operators
    /// that occurs, tried in this order and kept on the value (`ram>=1024`: `ram`, `>=1024`);
    /// otherwise at its only `=` (`region=east`). fleet skipped a word that fits neither; here it
    /// is refused, so a typo does not silently drop a placement rule.
    static let comparisonOperators = ["<=", ">=", "!=", "==", "<", ">"]

    private static func metadataPair(_ text: String) -> (String, String)? {
        for comparison in comparisonOperators {
            if let start = text.indices.first(where: { text[$0...].hasPrefix(comparison) }) {
                return (String(text[..<start]), String(text[start...]))
            }
        }
        let parts = text.split(separator: "=", omittingEmptySubsequences: false)
        guard parts.count == 2 else { return nil }
        return (String(parts[0]), String(parts[1]))
    }

    private static func comparisonOperatorLength(_ value: String) -> Int {
        comparisonOperators.first { value.hasPrefix($0) }?.count ?? 0
    }

    /// fleet's `ValidateOptions`, in fleet's order, plus the self-reference check.
    private func validate(for unitName: UnitName) throws(FleetOptionsError) {
        if machineOf.contains(unitName) { throw .peerIsSelf(unitName) }
        for peer in machineOf {
            if let glob = conflicts.first(where: { $0.matches(peer.rawValue) }) {
                throw .unresolvableRequirement(peer: peer, option: .conflicts, pattern: glob.pattern)
            }
            if let glob = replaces.first(where: { $0.matches(peer.rawValue) }) {
                throw .unresolvableRequirement(peer: peer, option: .replaces, pattern: glob.pattern)
            }
        }
        let present: [FleetOptionName: Bool] = [
            .machineID: machineID != nil, .machineOf: !machineOf.isEmpty,
            .conflicts: !conflicts.isEmpty, .replaces: !replaces.isEmpty, .global: isGlobal,
        ]
        let refusedPairs: [(FleetOptionName, FleetOptionName)] = [
            (.machineID, .machineOf), (.machineID, .conflicts), (.machineID, .global),
            (.machineID, .replaces), (.global, .machineOf),
            (.global, .replaces), (.conflicts, .replaces),
        ]
        for (first, second) in refusedPairs where present[first] == true && present[second] == true {
            throw .incompatibleOptions(first, second)
        }
    }
}

/// One metadata key and the values a machine may have for it.
public struct MachineMetadataRequirement: Hashable, Sendable {
    public let key: String
    /// In the order first written, without repeats, a comparison's operator at its start
    /// (`>=1024`); the scheduler's `MetadataMatcher` says how they combine.
    public let allowedValues: [String]
}

/// The elements in order, later repeats removed.
private func uniqued<Element: Hashable>(_ elements: [Element]) -> [Element] {
    var seen = Set<Element>()
    return elements.filter { seen.insert($0).inserted }
}
