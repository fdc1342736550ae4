/// `MachineMetadata` requirements, matched as fleet 1.0 matched them (its `HasMetadata`, with the
/// comparison operators its functional test `TestMetadataOperator` checks). `FleetOptions` splits
/// each word at its operator and keeps the operator on the value: `ram>=1024` is key `ram`, value
/// `>=1024`; `region=us-east` is key `region`, value `us-east`.
///
/// A machine qualifies for a key when it has the key and either its value is one of the listed
/// values as written, or every listed value is a comparison that its value meets:
/// - `<=n`, `>=n`, `<n`, `>n`: numeric (a machine value or bound that is not a number fails);
/// - `!=v`, `==v`: text.
///
/// So plain values are alternatives (`region=a` twice with `region=b`: either), while comparisons
/// all hold together (`ram>=1024` with `ram<=4096`: a range; `disk!=hdd` with `disk!=tape`: neither).
/// A machine without the key never qualifies, not even for `!=`, as in fleet. Different keys must
/// all match (AND).
public struct MetadataMatcher: Hashable, Sendable {
    public enum Comparison: Hashable, Sendable {
        case atMost(Double?)
        case atLeast(Double?)
        case below(Double?)
        case above(Double?)
        case differs(String)
        case equals(String)
        /// A plain value: it qualifies only through being the machine's value itself.
        case plain

        /// Longest operators first, so `<=` is not read as `<`.
        static func parse(_ value: String) -> Comparison {
            let number = { (prefixLength: Int) in Double(value.dropFirst(prefixLength)) }
            if value.hasPrefix("<=") { return .atMost(number(2)) }
            if value.hasPrefix(">=") { return .atLeast(number(2)) }
            if value.hasPrefix("!=") { return .differs(String(value.dropFirst(2))) }
            if value.hasPrefix("==") { return .equals(String(value.dropFirst(2))) }
            if value.hasPrefix("<") { return .below(number(1)) }
            if value.hasPrefix(">") { return .above(number(1)) }
            return .plain
        }

        func holds(for machineValue: String) -> Bool {
            let number = Double(machineValue)
            func compare(_ bound: Double?, _ test: (Double, Double) -> Bool) -> Bool {
                guard let bound, let number else { return false }
                return test(number, bound)
            }
            switch self {
            case .atMost(let bound): return compare(bound, <=)
            case .atLeast(let bound): return compare(bound, >=)
            case .below(let bound): return compare(bound, <)
            case .above(let bound): return compare(bound, >)
            case .differs(let text): return machineValue != text
            case .equals(let text): return machineValue == text
            case .plain: return false
            }
        }
    }

    public struct Requirement: Hashable, Sendable {
        let key: String
        let values: [String]
        let comparisons: [Comparison]

        func isSatisfied(by machineValue: String?) -> Bool {
            guard let machineValue else { return false }
            if values.contains(machineValue) { return true }
            return comparisons.allSatisfy { $0.holds(for: machineValue) }
        }
    }

    public let requirements: [Requirement]

    public init(_ requirements: [MachineMetadataRequirement]) {
        self.requirements = requirements.map {
            Requirement(key: $0.key, values: $0.allowedValues, comparisons: $0.allowedValues.map(Comparison.parse))
        }
    }

    public var isEmpty: Bool { requirements.isEmpty }

    public func isSatisfied(by metadata: [String: String]) -> Bool {
        requirements.allSatisfy { $0.isSatisfied(by: metadata[$0.key]) }
    }
}
