import UnitFile

/// `MachineMetadata` requirements with Flotilla's comparison operators, read from the keys
/// `FleetOptions` produces. fleet's only operator is equality; its parser splits each word at
/// `=`, so `ram>=4096` arrives as key `ram>` and value `4096`, and Flotilla reads that suffix:
///
/// - `key=v` (fleet): the machine's value equals one of the listed values (OR across repeats);
/// - `key!=v`: the machine's value equals none of the listed values (an absent key qualifies);
/// - `key>=n`, `key<=n`: the machine's value is a number at least / at most one of the listed
///   numbers (an absent or non-numeric value does not qualify).
///
/// - `key=>n`, `key=<n`: strict comparisons, written with the operator at the start of the value
///   (a word without `=`, such as `ram>4096`, is refused by `FleetOptions`, as in fleet). A value
///   is read this way only when every value listed for the key has the same prefix and a number
///   after it; otherwise it is plain equality, as fleet would read it.
///
/// Different keys must all match (AND), as in fleet.
struct MetadataMatcher: Hashable, Sendable {
    enum Comparison: Hashable, Sendable {
        case equalsAny([String])
        case equalsNone([String])
        case atLeastOne([Double])
        case atMostOne([Double])
        case greaterThanOne([Double])
        case lessThanOne([Double])
        /// A bound that is not a number: nothing qualifies (the unit stays unscheduled with a reason).
        case invalidNumber(String)
    }

    let requirements: [(key: String, comparison: Comparison)]

    static func == (lhs: MetadataMatcher, rhs: MetadataMatcher) -> Bool {
        lhs.requirements.elementsEqual(rhs.requirements) { $0.key == $1.key && $0.comparison == $1.comparison }
    }
    func hash(into hasher: inout Hasher) {
        for requirement in requirements {
            hasher.combine(requirement.key)
            hasher.combine(requirement.comparison)
        }
    }

    init(_ requirements: [MachineMetadataRequirement]) {
        self.requirements = requirements.map { requirement in
            let key = requirement.key
            let values = requirement.allowedValues
            func numbers() -> Comparison? {
                let parsed = values.compactMap { Double($0) }
                return parsed.count == values.count ? nil : .invalidNumber(values.joined(separator: ","))
            }
            switch key.last {
            case "!": return (String(key.dropLast()), .equalsNone(values))
            case ">": return (String(key.dropLast()), numbers() ?? .atLeastOne(values.compactMap { Double($0) }))
            case "<": return (String(key.dropLast()), numbers() ?? .atMostOne(values.compactMap { Double($0) }))
            default: return (key, MetadataMatcher.strictComparison(values) ?? .equalsAny(values))
            }
        }
    }

    /// `.greaterThanOne` / `.lessThanOne` when every value is `>n` / `<n` with a number `n`.
    private static func strictComparison(_ values: [String]) -> Comparison? {
        guard let prefix = values.first?.first, prefix == ">" || prefix == "<" else { return nil }
        var bounds: [Double] = []
        for value in values {
            guard value.first == prefix, let number = Double(value.dropFirst()) else { return nil }
            bounds.append(number)
        }
        return prefix == ">" ? .greaterThanOne(bounds) : .lessThanOne(bounds)
    }

    var isEmpty: Bool { requirements.isEmpty }

    func isSatisfied(by metadata: [String: String]) -> Bool {
        requirements.allSatisfy { requirement in
            let value = metadata[requirement.key]
            switch requirement.comparison {
            case .equalsAny(let allowed): return value.map { allowed.contains($0) } ?? false
            case .equalsNone(let refused): return value.map { !refused.contains($0) } ?? true
            case .atLeastOne(let bounds): return value.flatMap(Double.init).map { number in bounds.contains { number >= $0 } } ?? false
            case .atMostOne(let bounds): return value.flatMap(Double.init).map { number in bounds.contains { number <= $0 } } ?? false
            case .greaterThanOne(let bounds): return value.flatMap(Double.init).map { number in bounds.contains { number > $0 } } ?? false
            case .lessThanOne(let bounds): return value.flatMap(Double.init).map { number in bounds.contains { number < $0 } } ?? false
            case .invalidNumber: return false
            }
        }
    }
}
