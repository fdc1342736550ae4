import FleetAPI
import Logging
import NIOHTTP1
import UnitFile

/// One complete request as read from a connection (the body already bounded).
struct APIRequest: Sendable {
    var method: HTTPMethod
    /// The request target as sent: path and query, still percent-encoded.
    var target: String
    var headers: HTTPHeaders
    var body: [UInt8]

    var path: Substring { target.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)[0] }

    /// The origin form (`/path?query`) of a request target. A target in absolute form
    /// (`http://domain-sock/fleet/v1/units?alt=json`, which fleet's older generated Go client
    /// made net/http write) loses its scheme and authority: RFC 7230 §5.3.2 has servers accept
    /// it. Any other target is returned as it is (the router refuses what is not a path).
    static func originForm(of target: String) -> String {
        for scheme in ["http://", "https://"] where target.lowercased().hasPrefix(scheme) {
            let afterScheme = target.dropFirst(scheme.count)
            guard let end = afterScheme.firstIndex(where: { $0 == "/" || $0 == "?" }) else { return "/" }
            let rest = afterScheme[end...]
            return rest.hasPrefix("?") ? "/" + rest : String(rest)
        }
        return target
    }
    var query: Substring {
        let parts = target.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)
        return parts.count > 1 ? parts[1] : ""
    }
}

/// What the connection writes back.
enum APIResponse: Sendable {
    case complete(status: HTTPResponseStatus, headers: HTTPHeaders, body: [UInt8])
    /// A chunked text/plain answer of one line per element, until the sequence ends or the
    /// client goes away (then the consuming task is cancelled, which ends the backend's stream).
    case lineStream(AsyncThrowingStream<String, any Error>)

    static func json<Entity: Encodable>(_ entity: Entity, status: HTTPResponseStatus = .ok) -> APIResponse {
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: "application/json")
        return .complete(status: status, headers: headers, body: JSONBodies.encode(entity))
    }

    /// No body, but fleet's Content-Type all the same: fleet's server set application/json on
    /// every answer, its 204s too, and its functional tests check that header on them.
    static func empty(_ status: HTTPResponseStatus) -> APIResponse {
        .complete(status: status, headers: HTTPHeaders([("Content-Type", "application/json")]), body: [])
    }

    /// fleet's error entity with the status as its code.
    static func error(_ error: APIError, extraHeaders: HTTPHeaders = HTTPHeaders()) -> APIResponse {
        // A backend that returns a status outside 4xx/5xx made a mistake; the client still
        // must see a failure.
        let code = (400...599).contains(error.status) ? error.status : 500
        var headers = extraHeaders
        headers.add(name: "Content-Type", value: "application/json")
        return .complete(status: HTTPResponseStatus(statusCode: code), headers: headers,
                         body: JSONBodies.encode(FleetErrorBody(code: code, message: error.message)))
    }
}

/// Turns a request into a response: routing, parameter and body validation, paging, and the
/// backend call. It owns no connection state, so any number run concurrently.
struct APIRequestHandler: Sendable {
    let backend: any APIBackend
    let configuration: HTTPAPIConfiguration
    let logger: Logger

    func respond(to request: APIRequest, origin: ConnectionOrigin) async -> APIResponse {
        switch Router.match(method: request.method, path: String(request.path)) {
        case .route(let route):
            let caller: APICaller
            let token = APICaller.token { request.headers.first(name: $0) }
            switch PeerAccess.caller(for: route, header: request.headers.first(name: APICaller.headerName), token: token,
                                     policies: request.headers.first(name: APICaller.policiesHeaderName), origin: origin) {
            case .success(let decided):
                caller = decided
            case .failure(let refusal):
                logger.warning("API request refused", metadata: [
                    "method": "\(request.method)", "target": "\(request.target)", "status": "\(refusal.status)",
                    "peer": "\(origin)", "caller": "\(request.headers.first(name: APICaller.headerName) ?? "-")",
                    "reason": "\(refusal.message)",
                ])
                backend.requestRefused(status: refusal.status)
                return .error(refusal)
            }
            do throws(APIError) {
                if let access = route.access {
                    do {
                        try await backend.authorize(caller, for: access)
                    } catch {
                        logger.warning("API request refused", metadata: [
                            "method": "\(request.method)", "target": "\(request.target)", "status": "\(error.status)",
                            "caller": "\(caller)", "reason": "\(error.message)",
                        ])
                        throw error
                    }
                }
                return try await respond(to: route, request: request, caller: caller)
            } catch {
                if error.status >= 500 {
                    logger.warning("API request failed", metadata: [
                        "method": "\(request.method)", "target": "\(request.target)", "status": "\(error.status)",
                        "error": "\(error.message)",
                    ])
                }
                return .error(error)
            }
        case .notFound:
            return .error(.notFound("no resource at \(request.path)"))
        case .badPath(let reason):
            return .error(.badRequest("invalid request path: \(reason)"))
        case .methodNotAllowed(let allowed):
            let names = allowed.map { "\($0)" }
            var headers = HTTPHeaders()
            headers.add(name: "Allow", value: names.joined(separator: ", "))
            return .error(APIError(status: 405, message: "only \(names.joined(separator: ", ")) supported against this resource"),
                          extraHeaders: headers)
        }
    }

    /// Binds the request's caller and its read consistency (`?consistency=leader|local`) for the
    /// backend.
    private func respond(to route: Route, request: APIRequest, caller: APICaller) async throws(APIError) -> APIResponse {
        var consistency = ReadConsistency.leader
        if case .success(let query) = QueryParameters.parse(request.query), let raw = try query.single("consistency") {
            guard let parsed = ReadConsistency(rawValue: raw) else {
                throw .badRequest("consistency must be one of \(ReadConsistency.allCases.map(\.rawValue).joined(separator: ", ")), got \(raw.debugDescription)")
            }
            consistency = parsed
        }
        do {
            return try await APICaller.$current.withValue(caller) {
                try await ReadConsistency.$current.withValue(consistency) {
                    try await respondRouted(to: route, request: request)
                }
            }
        } catch let error as APIError {
            throw error
        } catch {
            throw .internalError("\(error)")
        }
    }

    private func respondRouted(to route: Route, request: APIRequest) async throws(APIError) -> APIResponse {
        let query: QueryParameters
        switch QueryParameters.parse(request.query) {
        case .success(let parsed): query = parsed
        case .failure(let error): throw .badRequest("invalid query: \(error.message)")
        }
        switch route {
        case .listUnits:
            let token = try PageToken.parse(query)
            let (items, next) = token.page(of: try await backend.listUnits(), size: configuration.pageItemsMax)
            return .json(FleetUnitPage(units: Array(items), nextPageToken: next?.encoded))
        case .getUnit(let name):
            guard let unit = try await backend.unit(named: try unitName(name)) else { throw .notFound("unit does not exist") }
            return .json(unit)
        case .putUnit(let name):
            let writeID = try Self.writeID(request.headers)
            return try await WriteID.with(writeID) { () async throws(APIError) in
                try await putUnit(urlName: name, request: request)
            }
        case .deleteUnit(let name):
            let writeID = try Self.writeID(request.headers)
            try await WriteID.with(writeID) { () async throws(APIError) in
                try await backend.destroyUnit(named: try unitName(name))
            }
            return .empty(.noContent)
        case .listStates:
            let token = try PageToken.parse(query)
            let states = try await backend.unitStates(machineID: nonEmpty(try query.single("machineID")),
                                                      unitName: nonEmpty(try query.single("unitName")))
            let (items, next) = token.page(of: states, size: configuration.pageItemsMax)
            return .json(FleetUnitStatePage(states: Array(items), nextPageToken: next?.encoded))
        case .listMachines:
            let token = try PageToken.parse(query)
            let (items, next) = token.page(of: try await backend.listMachines(), size: configuration.pageItemsMax)
            return .json(FleetMachinePage(machines: Array(items), nextPageToken: next?.encoded))
        case .patchMachines:
            let operations = try JSONBodies.decode([FleetMachinePatchOperation].self, from: request.body, schema: .machinePatch)
            let changes = try MachinePatch.changes(from: operations)
            if !changes.isEmpty { try await backend.changeMachineMetadata(changes) }
            return .empty(.noContent)
        case .discovery:
            var headers = HTTPHeaders()
            headers.add(name: "Content-Type", value: "application/json")
            return .complete(status: .ok, headers: headers, body: DiscoveryDocument.bytes)
        case .openAPI:
            var headers = HTTPHeaders()
            headers.add(name: "Content-Type", value: "application/json")
            return .complete(status: .ok, headers: headers, body: PackageResources.openapi_json)
        case .clusterStatus:
            return .json(try await backend.clusterStatus())
        case .listMachinesDetailed:
            return .json(MachinesBody(machines: try await backend.listMachinesDetailed()))
        case .listUnitFiles:
            return .json(UnitFilesBody(units: try await backend.listUnitFiles()))
        case .drain(let machineID):
            try await backend.setDrained(machineID: machineID, isDrained: true)
            return .empty(.noContent)
        case .undrain(let machineID):
            try await backend.setDrained(machineID: machineID, isDrained: false)
            return .empty(.noContent)
        case .watch:
            let afterIndex = try query.integer("afterIndex", default: UInt64(0), maximum: UInt64.max)
            let wait = try waitMilliseconds(query)
            return .json(try await backend.events(afterIndex: afterIndex, waitMilliseconds: wait))
        case .journal(let name):
            let unit = try unitName(name)
            let lines = try query.integer("lines", default: 10, maximum: configuration.journalLinesMax)
            var output = JournalOutput.short
            if let raw = try query.single("output") {
                guard let parsed = JournalOutput(rawValue: raw) else {
                    throw .badRequest("output must be one of \(JournalOutput.allCases.map(\.rawValue).joined(separator: ", ")), got \(raw.debugDescription)")
                }
                output = parsed
            }
            if try query.boolean("follow") {
                return .lineStream(try await backend.followJournal(unit: unit, lines: lines, output: output))
            }
            return .json(try await backend.journal(unit: unit, lines: lines, output: output))
        case .unitStatus(let name):
            return .json(try await backend.status(unit: try unitName(name)))
        case .schedule(let machineID):
            let afterVersion = try query.integer("afterVersion", default: UInt64(0), maximum: UInt64.max)
            let wait = try waitMilliseconds(query)
            return .json(try await backend.schedule(machineID: machineID, afterVersion: afterVersion, waitMilliseconds: wait))
        case .reportStates(let machineID):
            let report = try JSONBodies.decode(StateReport.self, from: request.body, schema: .stateReport)
            try requireSameMachine(url: machineID, body: report.machineID)
            try await backend.reportStates(report)
            return .empty(.noContent)
        case .renewLease(let machineID):
            let renewal = try JSONBodies.decode(LeaseRenewalRequest.self, from: request.body, schema: .leaseRequest)
            try requireSameMachine(url: machineID, body: renewal.machineID)
            return .json(try await backend.renewLease(renewal))
        case .releaseLease(let machineID):
            let release = try JSONBodies.decode(LeaseReleaseRequest.self, from: request.body, schema: .leaseRequest)
            try requireSameMachine(url: machineID, body: release.machineID)
            try await backend.releaseLease(release)
            return .empty(.noContent)
        case .leaseWithholds:
            return .json(try await backend.leaseWithholds())
        case .aclBootstrap:
            return .json(try await backend.bootstrapACL())
        case .listACLTokens:
            return .json(FlotillaACLTokenList(tokens: try await backend.listACLTokens()))
        case .createACLToken:
            let body = try JSONBodies.decode(FlotillaACLTokenRequest.self, from: request.body, schema: .aclTokenRequest)
            for policy in body.policies {
                do { _ = try ACLPolicy(parsing: policy) } catch { throw .badRequest(error.description) }
            }
            guard !body.policies.isEmpty else { throw .badRequest("a token needs at least one policy (management, read, operator, units:<glob>)") }
            return .json(try await backend.createACLToken(body))
        case .deleteACLToken(let accessor):
            try await backend.deleteACLToken(accessorID: accessor)
            return .empty(.noContent)
        case .authorize:
            let body = try JSONBodies.decode(FlotillaAuthorizeRequest.self, from: request.body, schema: .authorizeRequest)
            guard let access = body.decoded else { throw .badRequest("access must be read, write (with unit), operate, manage or bootstrap") }
            try await backend.authorize(APICaller.current ?? APICaller(kind: .peer, machineID: "-"), for: access)
            return .empty(.noContent)
        case .gossipKeyring:
            return .json(try await backend.gossipKeyring())
        case .changeGossipKeyring:
            let change = try JSONBodies.decode(FlotillaKeyringChange.self, from: request.body, schema: .keyringChange)
            guard !change.key.isEmpty, change.key.utf8.count <= 256 else {
                throw .badRequest("key must be a base64 key (flotillactl keyring generate) or, for use and remove, a key's fingerprint")
            }
            try await backend.changeGossipKeyring(change)
            return .empty(.noContent)
        case .metrics:
            var headers = HTTPHeaders()
            headers.add(name: "Content-Type", value: "text/plain; version=0.0.4; charset=utf-8")
            return .complete(status: .ok, headers: headers, body: Array(await backend.metricsText().utf8))
        }
    }

    private func requireSameMachine(url: String, body: String) throws(APIError) {
        guard url == body else {
            throw .badRequest("machineID in URL \(url.debugDescription) differs from machineID in request body \(body.debugDescription)")
        }
    }

    /// fleet's PUT, in fleet's order of checks: the body, the name in it against the URL, the
    /// name itself, then the options. The rest depends on what the registry holds, so the
    /// backend decides it (`UnitPutRules`): a missing `desiredState` or `options` is an error
    /// only for some units.
    private func putUnit(urlName: String, request: APIRequest) async throws(APIError) -> APIResponse {
        try requireJSONContentType(request.headers)
        let body = try JSONBodies.decode(FleetUnitPutRequest.self, from: request.body, schema: .unitPut)
        if let bodyName = body.name, !bodyName.isEmpty, bodyName != urlName {
            throw .badRequest("name in URL \(urlName.debugDescription) differs from unit name in request body \(bodyName.debugDescription)")
        }
        let name = try unitName(urlName)
        // fleet accepted any name; a cluster that can replace dbus.service or -.mount on every
        // machine is one request away from bricking them all.
        if let reason = HostUnitNames.reservation(of: name) {
            throw .badRequest("unit name \(name) is reserved for the host: \(reason)")
        }
        var unitFile: UnitFile?
        if let options = body.options, !options.isEmpty {
            do {
                unitFile = try UnitFile(fleetOptions: options)
            } catch {
                throw .badRequest("invalid options: \(error)")
            }
        }
        let outcome = try await backend.putUnit(PutUnitRequest(name: name, desiredState: body.desiredState, unitFile: unitFile))
        switch outcome {
        case .created: return .complete(status: .created, headers: HTTPHeaders([("Content-Length", "0")]), body: [])
        case .modified: return .empty(.noContent)
        }
    }

    /// The write's idempotency key, if the request carries one (`WriteID`).
    static func writeID(_ headers: HTTPHeaders) throws(APIError) -> WriteID? {
        let values = headers[WriteID.headerName]
        guard !values.isEmpty else { return nil }
        guard values.count == 1, let id = WriteID(headerValue: values[0]) else {
            throw .badRequest("\(WriteID.headerName) must be one value of 16 hex digits, not all zero")
        }
        return id
    }

    /// fleet answered 415 to a PUT whose Content-Type was not exactly one application/json.
    private func requireJSONContentType(_ headers: HTTPHeaders) throws(APIError) {
        let values = headers["Content-Type"]
        guard values.count == 1 else {
            throw APIError(status: 415, message: "expected one Content-Type header (application/json), got \(values.count)")
        }
        let mediaType = values[0].split(separator: ";", maxSplits: 1, omittingEmptySubsequences: false)[0]
        guard mediaType.trimmingWhitespace().lowercased() == "application/json" else {
            throw APIError(status: 415, message: "only acceptable Content-Type is application/json")
        }
    }

    private func unitName(_ text: String) throws(APIError) -> UnitName {
        do {
            return try UnitName(text)
        } catch {
            throw .badRequest("invalid unit name \(text.debugDescription): \(error)")
        }
    }

    private func waitMilliseconds(_ query: QueryParameters) throws(APIError) -> Int {
        let requested = try query.integer("waitMilliseconds", default: 0, maximum: Int.max)
        return min(requested, configuration.longPollWaitMillisecondsMax)
    }

    private func nonEmpty(_ value: String?) -> String? {
        guard let value, !value.isEmpty else { return nil }
        return value
    }
}

/// `GET /flotilla/v1/machines`.
struct MachinesBody: Encodable {
    var machines: [FlotillaMachine]
}

/// `GET /flotilla/v1/unit-files`.
struct UnitFilesBody: Encodable {
    var units: [FlotillaUnitFile]
}

/// Validation of `PATCH /fleet/v1/machines` (fleet's checks: op, path shape, value present).
enum MachinePatch {
    static func changes(from operations: [FleetMachinePatchOperation]) throws(APIError) -> [MachineMetadataChange] {
        var changes: [MachineMetadataChange] = []
        changes.reserveCapacity(operations.count)
        for (index, operation) in operations.enumerated() {
            guard let (machineID, key) = parsePath(operation.path) else {
                throw .badRequest("operation \(index): path \(operation.path.debugDescription) is not /<machineID>/metadata/<key> (key of letters, digits, '_', '.', '-')")
            }
            switch operation.op {
            case "add", "replace":
                guard let value = operation.value, !value.isEmpty else {
                    throw .badRequest("operation \(index): \(operation.op) requires a non-empty value")
                }
                changes.append(MachineMetadataChange(machineID: machineID, key: key, operation: .set(value)))
            case "remove":
                changes.append(MachineMetadataChange(machineID: machineID, key: key, operation: .remove))
            default:
                throw .badRequest("operation \(index): op \(operation.op.debugDescription) is not one of add, remove, replace")
            }
        }
        return changes
    }

    static func parsePath(_ path: String) -> (machineID: String, key: String)? {
        let parts = path.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 4, parts[0].isEmpty, !parts[1].isEmpty, parts[2] == "metadata", !parts[3].isEmpty,
              parts[3].utf8.allSatisfy(isKeyByte) else { return nil }
        return (String(parts[1]), String(parts[3]))
    }

    private static func isKeyByte(_ byte: UInt8) -> Bool {
        (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z")) || (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z"))
            || (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")) || byte == UInt8(ascii: "_")
            || byte == UInt8(ascii: ".") || byte == UInt8(ascii: "-")
    }
}

extension Substring {
    func trimmingWhitespace() -> Substring {
        var result = self
        while result.first == " " || result.first == "\t" { result.removeFirst() }
        while result.last == " " || result.last == "\t" { result.removeLast() }
        return result
    }
}
