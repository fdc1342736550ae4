import FleetAPI
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix

/// How a `PUT /fleet/v1/units/<name>` ended: fleet answers 201 for a new unit, 204 otherwise.
public enum UnitPutOutcome: Sendable, Hashable {
    case created
    case modified
}

/// The client of flotillad's HTTP API: fleet's v1 routes and Flotilla's /flotilla/v1 additions.
///
/// Used by flotillactl, by peers forwarding writes to the leader (`send`), by agents following
/// their schedule (`schedule`, `reportStates`) and by orchestrators (`events`). Safe to share:
/// every method may be called concurrently; each request takes a kept-alive connection from a
/// small pool or opens one. Every request is bounded in time (`requestTimeout`, or the timeout
/// a long poll computes from its wait) and in size (`responseBodySizeMax`).
public final class FlotillaClient: Sendable {
    /// Idle kept-alive connections held per client; more concurrent requests open more connections.
    public static let idleConnectionsMax = 4
    /// Answers larger than this fail with `invalidResponse`: a bound, not an expected size (1,000
    /// units with their options are about 1 MiB).
    public static let responseBodySizeMax = 64 << 20
    /// Pages followed by one list call before it fails: guards against a server that loops.
    public static let pagesMax = 100_000
    /// A followed journal line longer than this fails the stream.
    public static let journalLineLengthMax = 1 << 20

    public let endpoint: APIEndpoint
    public let requestTimeout: TimeAmount
    /// How an `https` endpoint's server is trusted; nil trusts the system's CA roots. Not used for
    /// the other endpoints.
    public let tls: ClientTLS?
    private let transport: HTTPTransport

    /// For an `https` endpoint, `tls` is read here (its CA file included); a CA file that cannot
    /// be used fails every request with a `ClientError.connection` that names the file.
    /// `token` is an ACL token's secret, sent with every request (`X-Flotilla-Token`): what
    /// `api_listen` asks of its callers; the unix socket needs none.
    public init(endpoint: APIEndpoint, eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
                requestTimeout: TimeAmount = .seconds(10), tls: ClientTLS? = nil, token: String? = nil) {
        precondition(requestTimeout > .zero, "requestTimeout must be positive, got \(requestTimeout)")
        self.endpoint = endpoint
        self.requestTimeout = requestTimeout
        self.tls = tls
        self.transport = HTTPTransport(endpoint: endpoint, eventLoopGroup: eventLoopGroup,
                                       idleConnectionsMax: Self.idleConnectionsMax, tls: tls, token: token)
    }

    /// Closes the pooled idle connections (they are also closed when the client is released).
    public func closeIdleConnections() {
        transport.closeIdleConnections()
    }

    // MARK: - Raw

    /// Sends one request as given and returns the answer whatever its status: for proxying a
    /// request to the leader unchanged. Throws only when no complete HTTP answer came back.
    /// `pathAndQuery` must already be percent-encoded. `timeout` nil means `requestTimeout`.
    public func send(method: String, pathAndQuery: String, body: [UInt8]?, timeout: TimeAmount?)
        async throws(ClientError) -> RawResponse {
        guard pathAndQuery.hasPrefix("/"), !pathAndQuery.utf8.contains(where: { $0 <= 0x20 || $0 == 0x7F }) else {
            throw .connection("invalid request target \(pathAndQuery.debugDescription): must start with '/' and hold no spaces or control characters")
        }
        return try await transport.exchange(method: HTTPMethod(rawValue: method), pathAndQuery: pathAndQuery, body: body,
                                            timeout: timeout ?? requestTimeout, bodySizeMax: Self.responseBodySizeMax)
    }

    // MARK: - fleet v1: units

    /// Every unit, following `nextPageToken` to the last page.
    public func listUnits() async throws(ClientError) -> [FleetUnit] {
        try await collectPages(path: "/fleet/v1/units", query: []) { (page: FleetUnitPage) in (page.units, page.nextPageToken) }
    }

    /// The unit, or nil if there is none by that name.
    public func unit(named name: String) async throws(ClientError) -> FleetUnit? {
        let response = try await request("GET", "/fleet/v1/units/\(PercentEncoding.encodePathSegment(name))")
        if response.status == 404 { return nil }
        return try decodeSuccess(FleetUnit.self, from: response)
    }

    /// Creates the unit (with `options`), or changes its desired state (without them), or, with
    /// options, replaces its file (Flotilla's `--replace`).
    @discardableResult
    public func putUnit(named name: String, _ body: FleetUnitPutRequest) async throws(ClientError) -> UnitPutOutcome {
        let response = try await request("PUT", "/fleet/v1/units/\(PercentEncoding.encodePathSegment(name))", body: try encode(body))
        try requireSuccess(response)
        return response.status == 201 ? .created : .modified
    }

    /// Creates (or replaces) a unit from its options with the given desired state.
    @discardableResult
    public func createUnit(named name: String, options: [FleetUnitOption], desiredState: FleetUnitTargetState)
        async throws(ClientError) -> UnitPutOutcome {
        try await putUnit(named: name, FleetUnitPutRequest(name: name, desiredState: desiredState, options: options))
    }

    /// Changes an existing unit's desired state.
    public func setUnitTargetState(named name: String, _ desiredState: FleetUnitTargetState) async throws(ClientError) {
        try await putUnit(named: name, FleetUnitPutRequest(name: name, desiredState: desiredState))
    }

    /// Destroys the unit. Returns false if there was none by that name.
    @discardableResult
    public func destroyUnit(named name: String) async throws(ClientError) -> Bool {
        let response = try await request("DELETE", "/fleet/v1/units/\(PercentEncoding.encodePathSegment(name))")
        if response.status == 404 { return false }
        try requireSuccess(response)
        return true
    }

    /// What the machines' systemd report, optionally for one machine and/or one unit.
    public func unitStates(machineID: String? = nil, unitName: String? = nil) async throws(ClientError) -> [FleetUnitState] {
        var query: [(String, String)] = []
        if let machineID { query.append(("machineID", machineID)) }
        if let unitName { query.append(("unitName", unitName)) }
        return try await collectPages(path: "/fleet/v1/state", query: query) { (page: FleetUnitStatePage) in
            (page.states, page.nextPageToken)
        }
    }

    // MARK: - fleet v1: machines

    public func listMachines() async throws(ClientError) -> [FleetMachine] {
        try await collectPages(path: "/fleet/v1/machines", query: []) { (page: FleetMachinePage) in
            (page.machines, page.nextPageToken)
        }
    }

    /// Changes machine metadata with JSON-Patch operations, all or nothing.
    public func patchMachines(_ operations: [FleetMachinePatchOperation]) async throws(ClientError) {
        let response = try await request("PATCH", "/fleet/v1/machines", body: try encode(operations))
        try requireSuccess(response)
    }

    // MARK: - Flotilla

    public func clusterStatus() async throws(ClientError) -> FlotillaClusterStatus {
        try decodeSuccess(FlotillaClusterStatus.self, from: try await request("GET", "/flotilla/v1/cluster"))
    }

    public func listMachinesDetailed() async throws(ClientError) -> [FlotillaMachine] {
        try decodeSuccess(MachinesBody.self, from: try await request("GET", "/flotilla/v1/machines")).machines
    }

    public func listUnitFiles() async throws(ClientError) -> [FlotillaUnitFile] {
        try decodeSuccess(UnitFilesBody.self, from: try await request("GET", "/flotilla/v1/unit-files")).units
    }

    /// Drains a machine (no new units are placed on it, and its units move away) or ends a drain.
    public func setDrained(machineID: String, isDrained: Bool) async throws(ClientError) {
        let action = isDrained ? "drain" : "undrain"
        let response = try await request("POST", "/flotilla/v1/machines/\(PercentEncoding.encodePathSegment(machineID))/\(action)")
        try requireSuccess(response)
    }

    // MARK: - ACL tokens

    /// The cluster's first management token, once; afterwards the server answers 409.
    public func bootstrapACL() async throws(ClientError) -> FlotillaACLToken {
        try decodeSuccess(FlotillaACLToken.self, from: try await request("POST", "/flotilla/v1/acl/bootstrap"))
    }

    public func listACLTokens() async throws(ClientError) -> [FlotillaACLToken] {
        try decodeSuccess(FlotillaACLTokenList.self, from: try await request("GET", "/flotilla/v1/acl/tokens")).tokens
    }

    public func createACLToken(_ token: FlotillaACLTokenRequest) async throws(ClientError) -> FlotillaACLToken {
        try decodeSuccess(FlotillaACLToken.self, from: try await request("POST", "/flotilla/v1/acl/tokens", body: try encode(token)))
    }

    public func deleteACLToken(accessorID: String) async throws(ClientError) {
        try requireSuccess(try await request("DELETE", "/flotilla/v1/acl/tokens/\(PercentEncoding.encodePathSegment(accessorID))"))
    }

    /// Whether the caller being relayed (`APICaller.current`) may do `access`: throws the 401 or
    /// 403 of the voter that decided.
    public func authorize(_ access: APIAccess) async throws(ClientError) {
        try requireSuccess(try await request("POST", "/flotilla/v1/acl/authorize", body: try encode(FlotillaAuthorizeRequest(access))))
    }

    /// The cluster's gossip keys, by fingerprint, the primary first.
    public func gossipKeyring() async throws(ClientError) -> FlotillaGossipKeyring {
        try decodeSuccess(FlotillaGossipKeyring.self, from: try await request("GET", "/flotilla/v1/keyring"))
    }

    /// One step of a gossip key rotation (install, use, remove), committed cluster-wide.
    public func changeGossipKeyring(_ change: FlotillaKeyringChange) async throws(ClientError) {
        try requireSuccess(try await request("POST", "/flotilla/v1/keyring", body: try encode(change)))
    }

    /// Events after `afterIndex`, waiting up to `waitMilliseconds` for the first one. The
    /// request's timeout is the wait plus `requestTimeout`.
    public func events(afterIndex: UInt64, waitMilliseconds: Int) async throws(ClientError) -> FlotillaEventPage {
        let query = Self.query([("afterIndex", String(afterIndex)), ("waitMilliseconds", String(max(0, waitMilliseconds)))])
        let response = try await request("GET", "/flotilla/v1/watch" + query, timeout: longPollTimeout(waitMilliseconds))
        return try decodeSuccess(FlotillaEventPage.self, from: response)
    }

    /// The unit's last `lines` journal lines, read on its machine.
    public func journal(unit: String, lines: Int, output: JournalOutput = .short) async throws(ClientError) -> FlotillaJournal {
        let path = "/flotilla/v1/units/\(PercentEncoding.encodePathSegment(unit))/journal"
            + Self.query([("lines", String(max(0, lines))), ("output", output.rawValue)])
        return try decodeSuccess(FlotillaJournal.self, from: try await request("GET", path))
    }

    /// `systemctl status`-like text from the unit's machine.
    public func status(unit: String) async throws(ClientError) -> FlotillaUnitStatus {
        let path = "/flotilla/v1/units/\(PercentEncoding.encodePathSegment(unit))/status"
        return try decodeSuccess(FlotillaUnitStatus.self, from: try await request("GET", path))
    }

    /// The unit's last `lines` journal lines, then new ones as they are written, one element per
    /// line (without its newline). The stream ends when flotillad ends it and throws a
    /// `ClientError` if it breaks; stopping iteration (or cancelling) closes the connection.
    /// Lines are read from the connection only as fast as they are consumed.
    public func followJournal(unit: String, lines: Int, output: JournalOutput = .short) -> AsyncThrowingStream<String, any Error> {
        let path = "/flotilla/v1/units/\(PercentEncoding.encodePathSegment(unit))/journal"
            + Self.query([("lines", String(max(0, lines))), ("follow", "true"), ("output", output.rawValue)])
        let reader = JournalStreamReader(transport: transport, pathAndQuery: path, timeout: requestTimeout,
                                         lineLengthMax: Self.journalLineLengthMax)
        return AsyncThrowingStream(unfolding: { try await reader.nextLine() })
    }

    // MARK: - Peer endpoints

    /// The machine's schedule once the registry passes `afterVersion`, or when the wait ends.
    public func schedule(machineID: String, afterVersion: UInt64, waitMilliseconds: Int) async throws(ClientError) -> MachineSchedule {
        let path = "/flotilla/v1/peer/schedule/\(PercentEncoding.encodePathSegment(machineID))"
            + Self.query([("afterVersion", String(afterVersion)), ("waitMilliseconds", String(max(0, waitMilliseconds)))])
        return try decodeSuccess(MachineSchedule.self, from: try await request("GET", path, timeout: longPollTimeout(waitMilliseconds)))
    }

    public func reportStates(_ report: StateReport) async throws(ClientError) {
        let path = "/flotilla/v1/peer/states/\(PercentEncoding.encodePathSegment(report.machineID))"
        try requireSuccess(try await request("PUT", path, body: try encode(report)))
    }

    /// One lease renewal, answered by this voter's own ledger. `timeout` replaces the client's
    /// request timeout: a renewal answered later than the lease it could grant is worthless.
    public func renewLease(_ renewal: LeaseRenewalRequest, timeout: TimeAmount) async throws(ClientError) -> LeaseRenewalAnswer {
        let path = "/flotilla/v1/peer/lease/\(PercentEncoding.encodePathSegment(renewal.machineID))"
        return try decodeSuccess(LeaseRenewalAnswer.self, from: try await request("POST", path, body: try encode(renewal), timeout: timeout))
    }

    public func leaseWithholds(timeout: TimeAmount) async throws(ClientError) -> LeaseWithholdsReport {
        try decodeSuccess(LeaseWithholdsReport.self, from: try await request("GET", "/flotilla/v1/peer/lease-withholds", timeout: timeout))
    }

    public func releaseLease(_ release: LeaseReleaseRequest) async throws(ClientError) {
        let path = "/flotilla/v1/peer/lease/\(PercentEncoding.encodePathSegment(release.machineID))/release"
        try requireSuccess(try await request("POST", path, body: try encode(release)))
    }

    // MARK: - Helpers

    private struct MachinesBody: Decodable { var machines: [FlotillaMachine] }
    private struct UnitFilesBody: Decodable { var units: [FlotillaUnitFile] }

    private func longPollTimeout(_ waitMilliseconds: Int) -> TimeAmount {
        .milliseconds(Int64(max(0, waitMilliseconds))) + requestTimeout
    }

    private func request(_ method: String, _ pathAndQuery: String, body: [UInt8]? = nil, timeout: TimeAmount? = nil)
        async throws(ClientError) -> RawResponse {
        try await transport.exchange(method: HTTPMethod(rawValue: method), pathAndQuery: pathAndQuery, body: body,
                                     timeout: timeout ?? requestTimeout, bodySizeMax: Self.responseBodySizeMax)
    }

    private func collectPages<Page: Decodable, Item>(path: String, query: [(String, String)],
                                                     _ split: (Page) -> ([Item], String?)) async throws(ClientError) -> [Item] {
        var items: [Item] = []
        var token: String?
        var seenTokens: Set<String> = []
        for _ in 0..<Self.pagesMax {
            var pageQuery = query
            if let token { pageQuery.append(("nextPageToken", token)) }
            let page = try decodeSuccess(Page.self, from: try await request("GET", path + Self.query(pageQuery)))
            let (pageItems, next) = split(page)
            items.append(contentsOf: pageItems)
            guard let next, !next.isEmpty else { return items }
            guard seenTokens.insert(next).inserted else {
                throw .invalidResponse("\(path) returned the page token \(next.debugDescription) twice")
            }
            token = next
        }
        throw .invalidResponse("\(path) had more than \(Self.pagesMax) pages")
    }

    static func query(_ items: [(String, String)]) -> String {
        guard !items.isEmpty else { return "" }
        return "?" + items.map { "\(PercentEncoding.encodeQueryValue($0.0))=\(PercentEncoding.encodeQueryValue($0.1))" }
            .joined(separator: "&")
    }

    private func encode(_ value: some Encodable) throws(ClientError) -> [UInt8] {
        do {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            return Array(try encoder.encode(value))
        } catch {
            throw .invalidResponse("cannot encode the request: \(error)")
        }
    }

    private func decodeSuccess<Value: Decodable>(_ type: Value.Type, from response: RawResponse) throws(ClientError) -> Value {
        try requireSuccess(response)
        do {
            return try JSONDecoder().decode(type, from: Data(response.body))
        } catch {
            throw .invalidResponse("expected \(Value.self) as JSON: \(error)")
        }
    }

    private func requireSuccess(_ response: RawResponse) throws(ClientError) {
        guard !response.isSuccess else { return }
        throw Self.apiError(from: response)
    }

    /// fleet's error entity if the body is one, else the body's text (bounded), else the status.
    static func apiError(from response: RawResponse) -> ClientError {
        if let body = try? JSONDecoder().decode(FleetErrorBody.self, from: Data(response.body)) {
            return .api(status: response.status, message: body.error.message)
        }
        let text = String(decoding: response.body.prefix(512), as: UTF8.self).trimmingWhitespace()
        return .api(status: response.status, message: text)
    }
}

/// Reads a followed journal line by line, pulling from the connection only when asked: the
/// stream's bounded chunk buffer then fills only if the server outruns a reader that keeps
/// asking, and that ends the stream with an error instead of dropping lines.
actor JournalStreamReader {
    static let chunkBufferMax = 256

    private let transport: HTTPTransport
    private let pathAndQuery: String
    private let timeout: TimeAmount
    private let lineLengthMax: Int
    private var channel: (any Channel)?
    private var chunks: AsyncThrowingStream<[UInt8], any Error>.AsyncIterator?
    private var pending: [UInt8] = []
    private var pendingLines: [String] = []
    private var isFinished = false

    init(transport: HTTPTransport, pathAndQuery: String, timeout: TimeAmount, lineLengthMax: Int) {
        self.transport = transport
        self.pathAndQuery = pathAndQuery
        self.timeout = timeout
        self.lineLengthMax = lineLengthMax
    }

    deinit {
        channel?.close(promise: nil)
    }

    func nextLine() async throws -> String? {
        while true {
            if !pendingLines.isEmpty { return pendingLines.removeFirst() }
            if isFinished { return nil }
            if chunks == nil { try await open() }
            var iterator = chunks!
            let chunk: [UInt8]?
            do {
                chunk = try await iterator.next(isolation: self)
            } catch {
                finish()
                throw error as? ClientError ?? ClientError.connection("journal stream failed: \(error)")
            }
            chunks = iterator
            guard let chunk else {
                finish()
                if !pending.isEmpty {
                    let last = String(decoding: pending, as: UTF8.self)
                    pending = []
                    return last
                }
                return nil
            }
            try split(chunk)
        }
    }

    private func open() async throws {
        do {
            let (channel, head, chunks) = try await transport.openStream(method: .GET, pathAndQuery: pathAndQuery, timeout: timeout,
                                                                           chunkBufferMax: Self.chunkBufferMax)
            self.channel = channel
            guard head.isSuccess else {
                finish()
                throw FlotillaClient.apiError(from: head)
            }
            self.chunks = chunks.makeAsyncIterator()
        } catch {
            isFinished = true
            throw error
        }
    }

    private func split(_ chunk: [UInt8]) throws {
        for byte in chunk {
            if byte == UInt8(ascii: "\n") {
                if pending.last == UInt8(ascii: "\r") { pending.removeLast() }
                pendingLines.append(String(decoding: pending, as: UTF8.self))
                pending.removeAll(keepingCapacity: true)
            } else {
                pending.append(byte)
                if pending.count > lineLengthMax {
                    finish()
                    throw ClientError.invalidResponse("a journal line is longer than \(lineLengthMax) bytes")
                }
            }
        }
    }

    private func finish() {
        isFinished = true
        channel?.close(promise: nil)
        channel = nil
        chunks = nil
    }
}
