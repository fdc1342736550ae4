import NIOHTTP1

/// Every operation the API serves, with the path parameters already percent-decoded.
enum Route: Hashable, Sendable {
    // fleet v1
    case listUnits
    case getUnit(String)
    case putUnit(String)
    case deleteUnit(String)
    case listStates
    case listMachines
    case patchMachines
    case discovery
    // Flotilla's additions
    case clusterStatus
    case listMachinesDetailed
    case listUnitFiles
    case drain(machineID: String)
    case undrain(machineID: String)
    case watch
    case journal(unit: String)
    case unitStatus(unit: String)
    case schedule(machineID: String)
    case reportStates(machineID: String)
    case renewLease(machineID: String)
    case releaseLease(machineID: String)
    case leaseWithholds
    case gossipKeyring
    case changeGossipKeyring
    case aclBootstrap
    case listACLTokens
    case createACLToken
    case deleteACLToken(accessorID: String)
    case authorize
    case metrics
    case openAPI
}

/// The outcome of matching a request line against the route table.
enum RouteMatch: Equatable, Sendable {
    case route(Route)
    case notFound
    /// The path exists but not for this method; `allowed` goes into the Allow header.
    case methodNotAllowed(allowed: [HTTPMethod])
    /// The path could not be decoded (bad percent-encoding).
    case badPath(String)
}

/// Maps a method and a request target's path to a `Route`. Pure: no IO, no backend.
enum Router {
    private enum Segment {
        case literal(String)
        /// Named as the OpenAPI document names the path parameter.
        case parameter(String)
    }

    private struct Resource {
        let pattern: [Segment]
        /// In the order the Allow header lists them.
        let methods: [(HTTPMethod, @Sendable ([String]) -> Route)]
    }

    private static let fleet: [Segment] = [.literal("fleet"), .literal("v1")]
    private static let flotilla: [Segment] = [.literal("flotilla"), .literal("v1")]

    private static let resources: [Resource] = [
        Resource(pattern: fleet + [.literal("units")], methods: [(.GET, { _ in .listUnits })]),
        Resource(pattern: fleet + [.literal("units"), .parameter("unitName")], methods: [
            (.GET, { .getUnit($0[0]) }), (.PUT, { .putUnit($0[0]) }), (.DELETE, { .deleteUnit($0[0]) }),
        ]),
        Resource(pattern: fleet + [.literal("state")], methods: [(.GET, { _ in .listStates })]),
        Resource(pattern: fleet + [.literal("machines")], methods: [
            (.GET, { _ in .listMachines }), (.PATCH, { _ in .patchMachines }),
        ]),
        Resource(pattern: fleet + [.literal("discovery")], methods: [(.GET, { _ in .discovery })]),
        Resource(pattern: fleet + [.literal("discovery.json")], methods: [(.GET, { _ in .discovery })]),
        Resource(pattern: flotilla + [.literal("cluster")], methods: [(.GET, { _ in .clusterStatus })]),
        Resource(pattern: flotilla + [.literal("machines")], methods: [(.GET, { _ in .listMachinesDetailed })]),
        Resource(pattern: flotilla + [.literal("machines"), .parameter("machineID"), .literal("drain")],
                 methods: [(.POST, { .drain(machineID: $0[0]) })]),
        Resource(pattern: flotilla + [.literal("machines"), .parameter("machineID"), .literal("undrain")],
                 methods: [(.POST, { .undrain(machineID: $0[0]) })]),
        Resource(pattern: flotilla + [.literal("unit-files")], methods: [(.GET, { _ in .listUnitFiles })]),
        Resource(pattern: flotilla + [.literal("watch")], methods: [(.GET, { _ in .watch })]),
        Resource(pattern: flotilla + [.literal("acl"), .literal("bootstrap")], methods: [(.POST, { _ in .aclBootstrap })]),
        Resource(pattern: flotilla + [.literal("acl"), .literal("tokens")], methods: [
            (.GET, { _ in .listACLTokens }), (.POST, { _ in .createACLToken }),
        ]),
        Resource(pattern: flotilla + [.literal("acl"), .literal("tokens"), .parameter("accessorID")],
                 methods: [(.DELETE, { .deleteACLToken(accessorID: $0[0]) })]),
        Resource(pattern: flotilla + [.literal("acl"), .literal("authorize")], methods: [(.POST, { _ in .authorize })]),
        Resource(pattern: flotilla + [.literal("keyring")], methods: [
            (.GET, { _ in .gossipKeyring }), (.POST, { _ in .changeGossipKeyring }),
        ]),
        Resource(pattern: flotilla + [.literal("units"), .parameter("unitName"), .literal("journal")],
                 methods: [(.GET, { .journal(unit: $0[0]) })]),
        Resource(pattern: flotilla + [.literal("units"), .parameter("unitName"), .literal("status")],
                 methods: [(.GET, { .unitStatus(unit: $0[0]) })]),
        Resource(pattern: flotilla + [.literal("peer"), .literal("schedule"), .parameter("machineID")],
                 methods: [(.GET, { .schedule(machineID: $0[0]) })]),
        Resource(pattern: flotilla + [.literal("peer"), .literal("states"), .parameter("machineID")],
                 methods: [(.PUT, { .reportStates(machineID: $0[0]) })]),
        Resource(pattern: flotilla + [.literal("peer"), .literal("lease"), .parameter("machineID")],
                 methods: [(.POST, { .renewLease(machineID: $0[0]) })]),
        Resource(pattern: flotilla + [.literal("peer"), .literal("lease"), .parameter("machineID"), .literal("release")],
                 methods: [(.POST, { .releaseLease(machineID: $0[0]) })]),
        Resource(pattern: flotilla + [.literal("peer"), .literal("lease-withholds")],
                 methods: [(.GET, { _ in .leaseWithholds })]),
        Resource(pattern: flotilla + [.literal("openapi.json")], methods: [(.GET, { _ in .openAPI })]),
        Resource(pattern: [.literal("metrics")], methods: [(.GET, { _ in .metrics })]),
    ]

    /// Every path, with `{name}` for its parameters, and its methods in Allow order: what the
    /// OpenAPI document must describe, no more and no less (OpenAPIDocumentTests).
    static var pathTemplates: [(path: String, methods: [HTTPMethod])] {
        resources.map { resource in
            let path = resource.pattern.map { segment -> String in
                switch segment {
                case .literal(let literal): return literal
                case .parameter(let name): return "{\(name)}"
                }
            }
            return ("/" + path.joined(separator: "/"), resource.methods.map(\.0))
        }
    }

    static func match(method: HTTPMethod, path: String) -> RouteMatch {
        let segments: [String]
        switch splitPath(path) {
        case .success(let decoded): segments = decoded
        case .failure(let error): return .badPath(error.message)
        }
        for resource in resources {
            guard let parameters = bind(resource.pattern, to: segments) else { continue }
            if let entry = resource.methods.first(where: { $0.0 == method }) {
                return .route(entry.1(parameters))
            }
            return .methodNotAllowed(allowed: resource.methods.map(\.0))
        }
        return .notFound
    }

    /// Splits an absolute path into percent-decoded segments. One trailing slash is ignored
    /// (`/fleet/v1/units/` is the collection, as fleet served it); empty inner segments are kept
    /// so that they match nothing.
    static func splitPath(_ path: String) -> Result<[String], PercentDecodingError> {
        guard path.hasPrefix("/") else { return .failure(PercentDecodingError(message: "path must start with '/'")) }
        var raw = path.utf8.dropFirst().split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false)
        if raw.count > 1, raw.last?.isEmpty == true { raw.removeLast() }
        var segments: [String] = []
        segments.reserveCapacity(raw.count)
        for segment in raw {
            switch PercentDecoding.decode(segment, plusIsSpace: false) {
            case .success(let decoded): segments.append(decoded)
            case .failure(let error): return .failure(error)
            }
        }
        return .success(segments)
    }

    private static func bind(_ pattern: [Segment], to segments: [String]) -> [String]? {
        guard pattern.count == segments.count else { return nil }
        var parameters: [String] = []
        for (expected, actual) in zip(pattern, segments) {
            switch expected {
            case .literal(let literal):
                guard literal == actual else { return nil }
            case .parameter:
                guard !actual.isEmpty else { return nil }
                parameters.append(actual)
            }
        }
        return parameters
    }
}

struct PercentDecodingError: Error, Hashable, Sendable {
    var message: String
}

enum PercentDecoding {
    /// Decodes `%XX` escapes (and, in a query, `+` as a space). A truncated or non-hex escape, or
    /// bytes that are not UTF-8 once decoded, are refused rather than passed on half-decoded.
    static func decode<Bytes: Collection<UInt8>>(_ bytes: Bytes, plusIsSpace: Bool) -> Result<String, PercentDecodingError> {
        var output: [UInt8] = []
        output.reserveCapacity(bytes.count)
        var index = bytes.startIndex
        while index != bytes.endIndex {
            let byte = bytes[index]
            if byte == UInt8(ascii: "%") {
                let high = bytes.index(after: index)
                guard high != bytes.endIndex, bytes.index(after: high) != bytes.endIndex,
                      let highValue = hexValue(bytes[high]), let lowValue = hexValue(bytes[bytes.index(after: high)]) else {
                    return .failure(PercentDecodingError(message: "invalid percent-encoding"))
                }
                output.append(highValue << 4 | lowValue)
                index = bytes.index(high, offsetBy: 2)
                continue
            }
            output.append(plusIsSpace && byte == UInt8(ascii: "+") ? UInt8(ascii: " ") : byte)
            index = bytes.index(after: index)
        }
        guard let string = String(validating: output, as: UTF8.self) else {
            return .failure(PercentDecodingError(message: "percent-encoded bytes are not UTF-8"))
        }
        return .success(string)
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return byte - UInt8(ascii: "A") + 10
        default: return nil
        }
    }
}

/// A request target's query, decoded. A parameter given twice is refused by the accessors
/// that read it (fleet refused a repeated `nextPageToken`); unknown parameters are ignored,
/// as fleet ignored them.
struct QueryParameters: Sendable {
    private var values: [String: [String]] = [:]

    static func parse(_ query: Substring) -> Result<QueryParameters, PercentDecodingError> {
        var parameters = QueryParameters()
        for pair in query.utf8.split(separator: UInt8(ascii: "&")) {
            let parts = pair.split(separator: UInt8(ascii: "="), maxSplits: 1, omittingEmptySubsequences: false)
            let name: String
            let value: String
            switch PercentDecoding.decode(parts[0], plusIsSpace: true) {
            case .success(let decoded): name = decoded
            case .failure(let error): return .failure(error)
            }
            if parts.count > 1 {
                switch PercentDecoding.decode(parts[1], plusIsSpace: true) {
                case .success(let decoded): value = decoded
                case .failure(let error): return .failure(error)
                }
            } else {
                value = ""
            }
            parameters.values[name, default: []].append(value)
        }
        return .success(parameters)
    }

    /// The single value of `name`, nil when absent.
    func single(_ name: String) throws(APIError) -> String? {
        guard let all = values[name] else { return nil }
        guard all.count == 1 else { throw .badRequest("query parameter \(name) given \(all.count) times; give it once") }
        return all[0]
    }

    /// A non-negative decimal integer no larger than `maximum`, or `defaultValue` when absent.
    func integer<Value: FixedWidthInteger & Sendable>(_ name: String, default defaultValue: Value, maximum: Value) throws(APIError) -> Value {
        guard let text = try single(name) else { return defaultValue }
        guard !text.isEmpty, text.utf8.count <= 20, text.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }),
              let value = Value(text), value <= maximum else {
            throw .badRequest("query parameter \(name) must be a whole number from 0 to \(maximum), got \(text.debugDescription)")
        }
        return value
    }

    func boolean(_ name: String) throws(APIError) -> Bool {
        switch try single(name) {
        case nil, "false", "0": return false
        case "", "true", "1": return true
        case let other?: throw .badRequest("query parameter \(name) must be true or false, got \(other.debugDescription)")
        }
    }
}
