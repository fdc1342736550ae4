import CSystemd
import Logging

#if canImport(Glibc)
import Glibc
#endif

let systemdDestination = "org.freedesktop.systemd1"
let managerObjectPath = "/org/freedesktop/systemd1"
let managerInterface = "org.freedesktop.systemd1.Manager"
let unitInterface = "org.freedesktop.systemd1.Unit"
let serviceInterface = "org.freedesktop.systemd1.Service"
let propertiesInterface = "org.freedesktop.DBus.Properties"
let unitPathNamespace = "/org/freedesktop/systemd1/unit"

/// A client of one machine's systemd over D-Bus, through libsystemd's sd-bus.
///
/// Threading: the actor's executor is a `BusEventLoop`, a dedicated thread that also runs
/// `sd_bus_process`. Every sd-bus call and callback therefore runs isolated to this actor, which
/// is how a connection that is not thread-safe is used from any task.
///
/// Failure contract: every method call carries an sd-bus timeout (`callTimeout`); every job wait
/// a deadline (`jobTimeout`); when the connection dies, every call and job wait in flight fails
/// with `.disconnected` at once, and the manager reconnects with exponential backoff. After each
/// (re)connect it subscribes again and re-reads the state of every watched unit, publishing the
/// ones that differ, so a consumer of `stateChanges` misses no final state across a reconnect.
///
/// State tracking is by signals, not polling: `Subscribe`, one match for `JobRemoved`/`UnitNew`/
/// `UnitRemoved`/`Reloading`, and one match for `PropertiesChanged` of the Unit interface on all
/// unit objects, filtered here to the watched units. One path-namespace match instead of one
/// match per unit keeps the number of match rules constant: dbus-daemon limits them per
/// connection (max_match_rules_per_connection), and N rules would cost N AddMatch round trips.
public actor SystemdManager {
    private nonisolated let loop: BusEventLoop
    public nonisolated var unownedExecutor: UnownedSerialExecutor { loop.asUnownedSerialExecutor() }

    public nonisolated let configuration: SystemdBusConfiguration
    private let logger: Logger

    /// The latest state of each watched unit, coalesced per unit (see `UnitStateChanges`).
    public nonisolated let stateChanges = UnitStateChanges()
    /// Connection life cycle, newest kept when the consumer lags (only the latest matters).
    public nonisolated let connectionEvents: AsyncStream<ConnectionEvent>
    private let connectionEventsContinuation: AsyncStream<ConnectionEvent>.Continuation

    private enum Phase: Equatable {
        case idle
        case connecting
        case connected
        case reconnecting
        case closed
    }

    private var phase: Phase = .idle
    /// The sd-bus connection; nil unless connecting or connected. Freed only outside callbacks.
    private var connection: BusPointer?
    private var bus: OpaquePointer? { connection?.raw }
    private var reconnectTask: Task<Void, Never>?

    private struct PendingCall {
        let operation: String
        let completion: (Result<MessageReader, SystemdBusError>) -> Void
    }

    private struct QueuedCall {
        let path: String
        let interface: String
        let member: String
        let operation: String
        let timeout: Duration
        let arguments: (MessageWriter) throws(SystemdBusError) -> Void
        let completion: (Result<MessageReader, SystemdBusError>) -> Void
    }

    /// Calls sent, by the cookie of the call message (replies carry it as reply cookie).
    private var pendingCalls: [UInt64: PendingCall] = [:]
    /// Calls waiting for an in-flight slot, FIFO.
    private var queuedCalls: [QueuedCall] = []
    private var queuedCallsHead = 0

    private struct JobWaiter {
        let unit: UnitName
        let waitID: UInt64
        let continuation: CheckedContinuation<JobResult, any Error>
        let deadline: Task<Void, Never>
    }

    private var nextJobWaitID: UInt64 = 0
    /// Job waits whose task was cancelled before their job path was known; at most one entry
    /// per call in flight, removed when its reply arrives.
    private var cancelledJobWaits: Set<UInt64> = []
    /// Job waits whose StartUnit/StopUnit/RestartUnit call has not been answered yet.
    private var inflightJobWaits: Set<UInt64> = []

    private var jobWaiters: [String: JobWaiter] = [:]
    private var orphanJobResults: [String: JobResult] = [:]
    private var orphanJobOrder: [String] = []

    private var watched: [UnitName: UnitState?] = [:]
    private var watchedByPath: [String: UnitName] = [:]
    private var refreshPending: Set<UnitName> = []
    private var refreshRunning = false

    public init(configuration: SystemdBusConfiguration = SystemdBusConfiguration(), logger: Logger? = nil) {
        configuration.validate()
        self.configuration = configuration
        self.logger = logger ?? Logger(label: "flotilla.systemd-bus")
        self.loop = BusEventLoop(name: configuration.connectionDescription)
        (connectionEvents, connectionEventsContinuation) = AsyncStream.makeStream(
            of: ConnectionEvent.self, bufferingPolicy: .bufferingNewest(32))
    }

    deinit {
        // No task can reach this actor any more, and the loop holds it weakly, so nothing else
        // touches the connection now.
        if let connection { sd_bus_close_unref(connection.raw) }
        reconnectTask?.cancel()
        connectionEventsContinuation.finish()
        stateChanges.finish()
        loop.shutdown()
    }

    // MARK: - Connection life cycle

    /// True while connected and subscribed.
    public var isConnected: Bool { phase == .connected }

    /// Connects, subscribes and starts tracking. Throws when the first attempt fails; after a
    /// first success, lost connections are re-established by themselves.
    public func connect() async throws {
        precondition(phase == .idle, "connect() called twice or after close()")
        loop.setSource(self)
        phase = .connecting
        do {
            try await connectOnce(attempt: 0)
        } catch {
            if bus != nil { tearDown(reason: "connect failed: \(error)") }
            if phase != .closed { phase = .idle }
            throw error
        }
    }

    /// Closes the connection: calls and job waits in flight fail with `.disconnected`, streams end.
    public func close() {
        guard phase != .closed else { return }
        phase = .closed
        reconnectTask?.cancel()
        reconnectTask = nil
        tearDown(reason: "closed by the client")
        connectionEventsContinuation.yield(.closed)
        connectionEventsContinuation.finish()
        stateChanges.finish()
    }

    /// Waits until connected (or returns false after `timeout`). For tests and start-up code.
    public func waitUntilConnected(timeout: Duration) async -> Bool {
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: timeout)
        while phase != .connected {
            if phase == .closed || clock.now >= deadline { return false }
            try? await Task.sleep(for: .milliseconds(10))
        }
        return true
    }

    private func connectOnce(attempt: Int) async throws {
        let newBus = try openBus()
        connection = BusPointer(raw: newBus)
        let thisBus = BusPointer(raw: newBus)
        let deadline = Task { [configuration] in
            try? await Task.sleep(for: configuration.connectTimeout)
            if !Task.isCancelled { self.connectTimedOut(bus: thisBus) }
        }
        defer { deadline.cancel() }
        try addMatches(newBus)
        try await subscribe()
        guard bus == thisBus.raw else { throw SystemdBusError.disconnected(reason: "connection lost while connecting") }
        phase = .connected
        logger.debug("connected", metadata: ["attempt": "\(attempt)"])
        connectionEventsContinuation.yield(.connected(attempt: attempt))
        // Re-read every watched unit: signals sent while we were away are lost.
        try? await refresh(Array(watched.keys), publishAlways: false)
    }

    /// Ends a connection attempt that hangs (e.g. a daemon that accepts and never authenticates):
    /// the attempt's calls fail with `.disconnected`, and `connect()` or the reconnect loop go on.
    private func connectTimedOut(bus timedOut: BusPointer) {
        guard bus == timedOut.raw, phase != .connected else { return }
        tearDown(reason: "connecting took longer than \(configuration.connectTimeout)")
    }

    private func openBus() throws -> OpaquePointer {
        var newBus: OpaquePointer? = nil
        var rc: Int32
        switch configuration.bus {
        case .system:
            rc = sd_bus_open_system_with_description(&newBus, configuration.connectionDescription)
        case .user:
            rc = sd_bus_open_user_with_description(&newBus, configuration.connectionDescription)
        case .address(let address):
            rc = openBus(address: address, &newBus)
        case .resolvedAddress(let resolve):
            guard let address = resolve() else {
                throw SystemdBusError.system(operation: "resolving the bus address", errno: ENOENT)
            }
            rc = openBus(address: address, &newBus)
        }
        guard rc >= 0, let newBus else {
            if let newBus { sd_bus_close_unref(newBus) }
            throw SystemdBusError.system(operation: "connecting to \(configuration.bus)", errno: -rc)
        }
        return newBus
    }

    private func openBus(address: String, _ newBus: inout OpaquePointer?) -> Int32 {
            var rc = sd_bus_new(&newBus)
            if rc >= 0 { rc = sd_bus_set_address(newBus, address) }
            if rc >= 0 { rc = sd_bus_set_bus_client(newBus, 1) }
            if rc >= 0 { rc = sd_bus_set_description(newBus, configuration.connectionDescription) }
            if rc >= 0 { rc = sd_bus_start(newBus) }
            return rc
    }

    /// Installs the signal matches. AddMatch is sent before Subscribe and any call on the same
    /// connection, and dbus-daemon handles one connection's messages in order, so no signal that
    /// a later call causes can slip past. A failed AddMatch makes sd-bus close the connection
    /// (no install callback), which the reconnect logic handles.
    private func addMatches(_ bus: OpaquePointer) throws {
        let rules = [
            "type='signal',sender='\(systemdDestination)',path='\(managerObjectPath)',interface='\(managerInterface)'",
            "type='signal',sender='\(systemdDestination)',interface='\(propertiesInterface)',member='PropertiesChanged',path_namespace='\(unitPathNamespace)',arg0='\(unitInterface)'",
            "type='signal',sender='org.freedesktop.DBus',path='/org/freedesktop/DBus',interface='org.freedesktop.DBus',member='NameOwnerChanged',arg0='\(systemdDestination)'",
        ]
        let userdata = Unmanaged.passUnretained(self).toOpaque()
        for rule in rules {
            let rc = sd_bus_add_match_async(bus, nil, rule, signalTrampoline, nil, userdata)
            if rc < 0 { throw SystemdBusError.system(operation: "sd_bus_add_match_async", errno: -rc) }
        }
    }

    private func subscribe() async throws {
        do {
            try await callVoid(managerObjectPath, managerInterface, "Subscribe", operation: "Subscribe") { _ in }
        } catch SystemdBusError.bus(let name, _) where name == "org.freedesktop.systemd1.AlreadySubscribed" {
            // systemd keeps subscriptions across daemon-reexec; being subscribed is the goal.
        }
    }

    /// Drops the connection and fails everything in flight. Never called inside an sd-bus callback.
    private func tearDown(reason: String) {
        let wasConnected = phase == .connected
        // Close without flushing: sd_bus_flush waits for a sick connection (one stuck before
        // Hello, say) up to sd-bus's 25 s default, on the bus thread. Nothing queued matters
        // any more: every call in flight fails below.
        if let bus {
            sd_bus_close_unref(bus)
            connection = nil
        }
        let error = SystemdBusError.disconnected(reason: reason)
        let calls = pendingCalls
        pendingCalls.removeAll()
        for (_, call) in calls { call.completion(.failure(error)) }
        let queued = queuedCalls[queuedCallsHead...]
        queuedCalls.removeAll()
        queuedCallsHead = 0
        for call in queued { call.completion(.failure(error)) }
        failJobWaiters(error)
        if wasConnected {
            phase = .reconnecting
            logger.warning("disconnected from systemd", metadata: ["reason": "\(reason)"])
            connectionEventsContinuation.yield(.disconnected(reason: reason))
        }
    }

    private func failJobWaiters(_ error: SystemdBusError) {
        let waiters = jobWaiters
        jobWaiters.removeAll()
        for (_, waiter) in waiters {
            waiter.deadline.cancel()
            waiter.continuation.resume(throwing: error)
        }
    }

    private func scheduleReconnect() {
        guard reconnectTask == nil, phase == .reconnecting else { return }
        reconnectTask = Task { await self.reconnectLoop() }
    }

    private func reconnectLoop() async {
        var attempt = 1
        while phase == .reconnecting, !Task.isCancelled {
            let delay = reconnectDelay(attempt: attempt)
            try? await Task.sleep(for: delay)
            guard phase == .reconnecting, !Task.isCancelled else { break }
            do {
                try await connectOnce(attempt: attempt)
            } catch {
                if bus != nil { tearDown(reason: "reconnect failed: \(error)") }
                logger.debug("reconnect failed", metadata: ["attempt": "\(attempt)", "error": "\(error)"])
                connectionEventsContinuation.yield(
                    .reconnectFailed(attempt: attempt, retryAfter: reconnectDelay(attempt: attempt + 1)))
                attempt += 1
            }
        }
        reconnectTask = nil
    }

    /// `reconnectBackoffMin * 2^(attempt-1)`, capped at `reconnectBackoffMax`. No jitter: there
    /// is one client per systemd, so there is no herd to spread.
    nonisolated func reconnectDelay(attempt: Int) -> Duration {
        var delay = configuration.reconnectBackoffMin
        for _ in 1..<max(attempt, 1) {
            delay *= 2
            if delay >= configuration.reconnectBackoffMax { return configuration.reconnectBackoffMax }
        }
        return min(delay, configuration.reconnectBackoffMax)
    }

    /// Called after `sd_bus_process` when the connection is gone.
    private func connectionLost(reason: String) {
        let wasConnecting = phase == .connecting
        tearDown(reason: reason)
        if !wasConnecting { scheduleReconnect() }
    }

    // MARK: - Event loop hooks (loop thread, isolated)

    fileprivate func pollDescriptorIsolated() -> (fd: Int32, events: Int16, timeoutMilliseconds: Int32)? {
        guard let bus else { return nil }
        let fd = sd_bus_get_fd(bus)
        let events = sd_bus_get_events(bus)
        if fd < 0 || events < 0 { return (max(fd, 0), 0, 0) }  // closing: process again at once
        var timeoutUsec: UInt64 = 0
        var timeoutMilliseconds: Int32 = -1
        if sd_bus_get_timeout(bus, &timeoutUsec) > 0, timeoutUsec != UInt64.max {
            var now = timespec()
            clock_gettime(CLOCK_MONOTONIC, &now)
            let nowUsec = UInt64(now.tv_sec) * 1_000_000 + UInt64(now.tv_nsec) / 1000
            let remainingUsec = timeoutUsec > nowUsec ? timeoutUsec - nowUsec : 0
            timeoutMilliseconds = Int32(min((remainingUsec + 999) / 1000, UInt64(Int32.max)))
        }
        return (fd, Int16(truncatingIfNeeded: events), timeoutMilliseconds)
    }

    fileprivate func processBusIsolated() -> Bool {
        for _ in 0..<configuration.processBatchMessagesMax {
            guard let bus else { return false }
            let rc = sd_bus_process(bus, nil)
            if rc < 0 {
                connectionLost(reason: "sd_bus_process: \(errnoName(-rc))")
                return false
            }
            if rc == 0 { return false }
        }
        return true
    }

    // MARK: - Calls

    /// Sends a method call to systemd; `completion` runs isolated, inside the reply callback,
    /// with the reply readable only during the call. Applying a reply there (not after an async
    /// hop) keeps replies and signals in wire order.
    private func send(
        path: String, interface: String, member: String, operation: String, timeout: Duration,
        arguments: @escaping (MessageWriter) throws(SystemdBusError) -> Void,
        completion: @escaping (Result<MessageReader, SystemdBusError>) -> Void
    ) {
        guard phase == .connected || (phase == .connecting && bus != nil) || (phase == .reconnecting && bus != nil) else {
            completion(.failure(phase == .closed ? .disconnected(reason: "closed") : .notConnected))
            return
        }
        if pendingCalls.count >= configuration.inflightCallsMax {
            if queuedCalls.count - queuedCallsHead >= configuration.queuedCallsMax {
                completion(.failure(.overloaded(queuedCallsMax: configuration.queuedCallsMax)))
                return
            }
            queuedCalls.append(QueuedCall(
                path: path, interface: interface, member: member, operation: operation, timeout: timeout,
                arguments: arguments, completion: completion))
            return
        }
        do throws(SystemdBusError) {
            let cookie = try sendNow(
                path: path, interface: interface, member: member, timeout: timeout, arguments: arguments)
            pendingCalls[cookie] = PendingCall(operation: operation, completion: completion)
        } catch {
            completion(.failure(error))
        }
    }

    private func sendNow(
        path: String, interface: String, member: String, timeout: Duration,
        arguments: (MessageWriter) throws(SystemdBusError) -> Void
    ) throws(SystemdBusError) -> UInt64 {
        guard let bus else { throw .notConnected }
        var message: OpaquePointer? = nil
        var rc = sd_bus_message_new_method_call(bus, &message, systemdDestination, path, interface, member)
        guard rc >= 0, let message else { throw .system(operation: "sd_bus_message_new_method_call", errno: -rc) }
        defer { sd_bus_message_unref(message) }
        try arguments(MessageWriter(message: message))
        let timeoutUsec = UInt64(timeout.components.seconds) * 1_000_000
            + UInt64(timeout.components.attoseconds / 1_000_000_000_000)
        rc = sd_bus_call_async(bus, nil, message, replyTrampoline, Unmanaged.passUnretained(self).toOpaque(), timeoutUsec)
        if rc < 0 { throw .system(operation: "sd_bus_call_async \(member)", errno: -rc) }
        var cookie: UInt64 = 0
        rc = sd_bus_message_get_cookie(message, &cookie)
        precondition(rc >= 0, "a sent message has a cookie")
        return cookie
    }

    fileprivate func handleReply(_ message: OpaquePointer) {
        var cookie: UInt64 = 0
        guard sd_bus_message_get_reply_cookie(message, &cookie) >= 0,
              let call = pendingCalls.removeValue(forKey: cookie)
        else {
            logger.debug("reply for an unknown call")
            return
        }
        if sd_bus_message_is_method_error(message, nil) > 0 {
            let error = sd_bus_message_get_error(message)
            let name = error?.pointee.name.map { String(cString: $0) } ?? "org.freedesktop.DBus.Error.Failed"
            let text = error?.pointee.message.map { String(cString: $0) } ?? ""
            let busIsOpen = bus.map { sd_bus_is_open($0) > 0 } ?? false
            call.completion(.failure(.fromBusError(name: name, message: text, operation: call.operation, busIsOpen: busIsOpen)))
        } else {
            call.completion(.success(MessageReader(message: message)))
        }
        startQueuedCalls()
    }

    private func startQueuedCalls() {
        while pendingCalls.count < configuration.inflightCallsMax, queuedCallsHead < queuedCalls.count {
            let call = queuedCalls[queuedCallsHead]
            queuedCallsHead += 1
            send(path: call.path, interface: call.interface, member: call.member, operation: call.operation,
                 timeout: call.timeout, arguments: call.arguments, completion: call.completion)
        }
        if queuedCallsHead == queuedCalls.count {
            queuedCalls.removeAll(keepingCapacity: true)
            queuedCallsHead = 0
        } else if queuedCallsHead > 1024, queuedCallsHead * 2 > queuedCalls.count {
            queuedCalls.removeFirst(queuedCallsHead)
            queuedCallsHead = 0
        }
    }

    /// A call whose reply is decoded by `decode`, inside the reply callback.
    private func call<T: Sendable>(
        _ path: String, _ interface: String, _ member: String, operation: String, timeout: Duration? = nil,
        arguments: @escaping (MessageWriter) throws(SystemdBusError) -> Void,
        decode: @escaping (MessageReader) throws(SystemdBusError) -> T
    ) async throws -> T {
        let timeout = timeout ?? configuration.callTimeout
        return try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
            send(path: path, interface: interface, member: member, operation: operation, timeout: timeout,
                 arguments: arguments) { result in
                switch result {
                case .failure(let error):
                    continuation.resume(throwing: error)
                case .success(let reader):
                    do throws(SystemdBusError) {
                        continuation.resume(returning: try decode(reader))
                    } catch {
                        continuation.resume(throwing: error)
                    }
                }
            }
        }
    }

    private func callVoid(
        _ path: String, _ interface: String, _ member: String, operation: String, timeout: Duration? = nil,
        arguments: @escaping (MessageWriter) throws(SystemdBusError) -> Void
    ) async throws {
        let _: Bool = try await call(
            path, interface, member, operation: operation, timeout: timeout, arguments: arguments) { _ in true }
    }

    // MARK: - Signals

    fileprivate func handleSignal(_ message: OpaquePointer) {
        guard let memberPointer = sd_bus_message_get_member(message) else { return }
        let member = String(cString: memberPointer)
        let reader = MessageReader(message: message)
        do throws(SystemdBusError) {
            switch member {
            case "PropertiesChanged":
                guard let pathPointer = sd_bus_message_get_path(message),
                      let unit = watchedByPath[String(cString: pathPointer)] else { return }
                try handlePropertiesChanged(unit: unit, reader: reader)
            case "JobRemoved":
                _ = try reader.readUInt32()
                let job = try reader.readObjectPath()
                _ = try reader.readString()
                let result = JobResult(rawValue: try reader.readString())
                jobRemoved(job: job, result: result)
            case "UnitNew":
                if let unit = try? UnitName(try reader.readString()), watched[unit] != nil {
                    scheduleRefresh(unit)
                }
            case "UnitRemoved":
                if let unit = try? UnitName(try reader.readString()), watched[unit] != nil {
                    update(unit, UnitState.unloaded, publishAlways: false)
                }
            case "Reloading":
                // After a daemon-reload, re-read watched units once; cheap insurance against
                // states that changed while systemd was rebuilding its unit objects.
                if try reader.readBool() == false {
                    for unit in watched.keys { scheduleRefresh(unit) }
                }
            case "NameOwnerChanged":
                _ = try reader.readString()
                _ = try reader.readString()
                let newOwner = try reader.readString()
                systemdOwnerChanged(newOwner: newOwner)
            default:
                return
            }
        } catch {
            logger.warning("malformed signal", metadata: ["member": "\(member)", "error": "\(error)"])
        }
    }

    private func handlePropertiesChanged(unit: UnitName, reader: MessageReader) throws(SystemdBusError) {
        guard try reader.readString() == unitInterface else { return }
        let changed = try reader.readPropertyMap()
        var invalidated: [String] = []
        if try reader.enter("a", "s") {
            while let (type, _) = try reader.peek(), type == "s" { invalidated.append(try reader.readString()) }
            try reader.exit()
        }
        let names = ["LoadState", "ActiveState", "SubState"]
        // Without a known load state (never read, or unloaded and now evidently loaded again),
        // merging would publish a made-up state: read the whole state instead.
        guard case .some(.some(let previous)) = watched[unit], previous.load != .unloaded || changed["LoadState"] != nil else {
            if names.contains(where: { changed[$0] != nil }) { scheduleRefresh(unit) }
            return
        }
        if invalidated.contains(where: names.contains) {
            scheduleRefresh(unit)
            return
        }
        var next = previous
        if let load = changed["LoadState"]?.string { next.load = LoadState(rawValue: load) }
        if let active = changed["ActiveState"]?.string { next.active = ActiveState(rawValue: active) }
        if let sub = changed["SubState"]?.string { next.sub = sub }
        update(unit, next, publishAlways: false)
    }

    private func jobRemoved(job: String, result: JobResult) {
        if let waiter = jobWaiters.removeValue(forKey: job) {
            waiter.deadline.cancel()
            waiter.continuation.resume(returning: result)
            return
        }
        guard configuration.orphanJobResultsMax > 0 else { return }
        if orphanJobResults.updateValue(result, forKey: job) == nil { orphanJobOrder.append(job) }
        if orphanJobOrder.count > configuration.orphanJobResultsMax {
            let dropped = orphanJobOrder.removeFirst()
            orphanJobResults.removeValue(forKey: dropped)
        }
    }

    private func systemdOwnerChanged(newOwner: String) {
        if newOwner.isEmpty {
            // systemd left the bus (crash, or the first half of daemon-reexec). Job waits cannot
            // be trusted to get their JobRemoved; fail them so callers re-read the state.
            failJobWaiters(.disconnected(reason: "org.freedesktop.systemd1 left the bus"))
            return
        }
        guard phase == .connected else { return }
        Task {
            do {
                try await self.subscribe()
                try await self.refresh(Array(self.watched.keys), publishAlways: false)
            } catch {
                self.logger.warning("resubscribe after systemd came back failed", metadata: ["error": "\(error)"])
            }
        }
    }

    // MARK: - Watched units

    /// Starts tracking `units`; their current state is published at once, then every change.
    public func watch(_ units: [UnitName]) async throws {
        var added: [UnitName] = []
        for unit in units where watched[unit] == nil {
            guard watched.count < configuration.watchedUnitsMax else {
                throw SystemdBusError.tooManyWatchedUnits(watchedUnitsMax: configuration.watchedUnitsMax)
            }
            watched[unit] = .some(nil)
            watchedByPath[unit.objectPath] = unit
            added.append(unit)
        }
        if phase == .connected, !added.isEmpty {
            try await refresh(added, publishAlways: true)
        }
    }

    /// Stops tracking `units`.
    public func unwatch(_ units: [UnitName]) {
        for unit in units {
            watched.removeValue(forKey: unit)
            watchedByPath.removeValue(forKey: unit.objectPath)
            refreshPending.remove(unit)
        }
    }

    /// The last known state of each watched unit (nil: not read yet).
    public func watchedStates() -> [UnitName: UnitState?] { watched }

    private func update(_ unit: UnitName, _ state: UnitState, publishAlways: Bool) {
        guard let previous = watched[unit] else { return }
        if previous != state || publishAlways {
            watched[unit] = state
            stateChanges.publish(UnitStateChange(unit: unit, state: state))
        }
    }

    /// Batches refreshes: one call at a time, and every unit asked for while it runs goes into
    /// the next one. Why one at a time: starting a thousand units makes a thousand UnitNew
    /// signals; with a call per round of signal processing, ListUnits calls of every loaded unit
    /// ran back to back and concurrently, and PID 1, which serves them on the thread that also
    /// runs the start jobs, started units several times slower while flotillad watched.
    private func scheduleRefresh(_ unit: UnitName) {
        refreshPending.insert(unit)
        guard !refreshRunning else { return }
        refreshRunning = true
        Task {
            while !self.refreshPending.isEmpty {
                let units = Array(self.refreshPending)
                self.refreshPending.removeAll()
                try? await self.refresh(units, publishAlways: false)
            }
            self.refreshRunning = false
        }
    }

    /// Reads the state of `units` and publishes the ones that changed. The states are applied
    /// inside the reply callback, in wire order with the signals.
    ///
    /// Why not ListUnitsByNames: it loads every unit it is asked about, systemd garbage-collects
    /// an unneeded one right after (UnitRemoved), and its UnitNew would ask again: a loop.
    /// ListUnitsByPatterns and ListUnits only report units already loaded, so tracking never
    /// changes what systemd holds; a watched unit they do not list is `UnitState.unloaded`.
    /// A few units are asked for by name (as patterns: unit names contain no `*?[`, and systemd
    /// matches with FNM_NOESCAPE, so a `\` matches itself); many at once with one ListUnits,
    /// filtered here, since systemd matches every loaded unit against every pattern.
    private func refresh(_ units: [UnitName], publishAlways: Bool) async throws {
        if units.isEmpty { return }
        if units.count > configuration.refreshByPatternUnitsMax {
            let asked = units
            _ = try await call(
                managerObjectPath, managerInterface, "ListUnits", operation: "ListUnits",
                arguments: { _ in },
                decode: { reader throws(SystemdBusError) in
                    let statuses = try reader.readUnitStatuses()
                    self.apply(statuses, asked: asked, publishAlways: publishAlways)
                    return statuses.count
                })
            return
        }
        let names = units.map(\.rawValue)
        _ = try await call(
            managerObjectPath, managerInterface, "ListUnitsByPatterns", operation: "ListUnitsByPatterns",
            arguments: { writer throws(SystemdBusError) in
                try writer.append([String]())
                try writer.append(names)
            },
            decode: { reader throws(SystemdBusError) in
                let statuses = try reader.readUnitStatuses()
                self.apply(statuses, asked: units, publishAlways: publishAlways)
                return statuses.count
            })
    }

    private func apply(_ statuses: [UnitStatus], asked: [UnitName], publishAlways: Bool) {
        let askedSet = Set(asked)
        var listed: Set<UnitName> = []
        for status in statuses {
            guard let unit = try? UnitName(status.name), askedSet.contains(unit) else { continue }
            listed.insert(unit)
            update(unit, status.state, publishAlways: publishAlways)
        }
        for unit in asked where !listed.contains(unit) {
            update(unit, UnitState.unloaded, publishAlways: publishAlways)
        }
    }

    // MARK: - Manager operations

    /// `LoadUnit`: loads the unit and returns its object path.
    public func loadUnit(_ unit: UnitName) async throws -> String {
        try await call(managerObjectPath, managerInterface, "LoadUnit", operation: "LoadUnit \(unit)",
                       arguments: { writer throws(SystemdBusError) in try writer.append(unit.rawValue) },
                       decode: { reader throws(SystemdBusError) in try reader.readObjectPath() })
    }

    /// `Reload` (daemon-reload). Its reply comes after the reload is done. About 70 ms on the test
    /// bed: reload once for many changed files. It waits `reloadTimeout`, not `callTimeout`: the
    /// reload re-reads every unit and its time grows with their number and the machine's load
    /// (over 5 s on a busy 2-core CI machine), and giving up early helps nobody, as systemd goes on
    /// reloading and a retry only queues a second reload behind the first.
    public func reload() async throws {
        try await callVoid(
            managerObjectPath, managerInterface, "Reload", operation: "Reload", timeout: configuration.reloadTimeout
        ) { _ in }
    }

    /// `StartUnit`, then waits for the job's `JobRemoved` and returns its result.
    public func startUnit(_ unit: UnitName, mode: JobMode = .replace) async throws -> JobResult {
        try await runJob("StartUnit", unit, mode)
    }

    /// `StopUnit`, then waits for the job's result.
    public func stopUnit(_ unit: UnitName, mode: JobMode = .replace) async throws -> JobResult {
        try await runJob("StopUnit", unit, mode)
    }

    /// `RestartUnit`, then waits for the job's result.
    public func restartUnit(_ unit: UnitName, mode: JobMode = .replace) async throws -> JobResult {
        try await runJob("RestartUnit", unit, mode)
    }

    /// Cancelling the calling task ends the wait with `CancellationError` (the job itself goes
    /// on in systemd; its outcome shows in the unit's state).
    private func runJob(_ method: String, _ unit: UnitName, _ mode: JobMode) async throws -> JobResult {
        let waitID = nextJobWaitID
        nextJobWaitID += 1
        inflightJobWaits.insert(waitID)
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<JobResult, any Error>) in
                send(path: managerObjectPath, interface: managerInterface, member: method,
                     operation: "\(method) \(unit)", timeout: configuration.callTimeout,
                     arguments: { writer throws(SystemdBusError) in
                         try writer.append(unit.rawValue)
                         try writer.append(mode.rawValue)
                     }) { result in
                    self.inflightJobWaits.remove(waitID)
                    let cancelled = self.cancelledJobWaits.remove(waitID) != nil
                    switch result {
                    case .failure(let error):
                        continuation.resume(throwing: error)
                    case .success(let reader):
                        do throws(SystemdBusError) {
                            let job = try reader.readObjectPath()
                            if cancelled {
                                continuation.resume(throwing: CancellationError())
                            } else {
                                self.awaitJob(job, unit: unit, waitID: waitID, continuation: continuation)
                            }
                        } catch {
                            continuation.resume(throwing: error)
                        }
                    }
                }
            }
        } onCancel: {
            Task { await self.cancelJobWait(waitID) }
        }
    }

    private func cancelJobWait(_ waitID: UInt64) {
        if let (job, waiter) = jobWaiters.first(where: { $0.value.waitID == waitID }) {
            jobWaiters.removeValue(forKey: job)
            waiter.deadline.cancel()
            waiter.continuation.resume(throwing: CancellationError())
        } else if inflightJobWaits.contains(waitID) {
            cancelledJobWaits.insert(waitID)
        }
        // Otherwise the wait has ended already: nothing to cancel, nothing to remember.
    }

    /// Registers the wait for `job` inside the reply callback, before any later signal is
    /// processed, so its JobRemoved cannot be missed.
    private func awaitJob(_ job: String, unit: UnitName, waitID: UInt64, continuation: CheckedContinuation<JobResult, any Error>) {
        if let result = orphanJobResults.removeValue(forKey: job) {
            orphanJobOrder.removeAll { $0 == job }
            continuation.resume(returning: result)
            return
        }
        let timeout = configuration.jobTimeout
        let deadline = Task {
            try? await Task.sleep(for: timeout)
            if !Task.isCancelled { self.jobTimedOut(job) }
        }
        jobWaiters[job] = JobWaiter(unit: unit, waitID: waitID, continuation: continuation, deadline: deadline)
    }

    private func jobTimedOut(_ job: String) {
        guard let waiter = jobWaiters.removeValue(forKey: job) else { return }
        waiter.continuation.resume(throwing: SystemdBusError.timedOut(operation: "job \(job) for \(waiter.unit)"))
    }

    /// `ResetFailedUnit`: forgets a failed state and the restart counter.
    public func resetFailedUnit(_ unit: UnitName) async throws {
        try await callVoid(managerObjectPath, managerInterface, "ResetFailedUnit", operation: "ResetFailedUnit \(unit)") {
            writer throws(SystemdBusError) in try writer.append(unit.rawValue)
        }
    }

    /// `ListUnitsByNames`: one row per name, loading units as needed (not found ones too).
    public func listUnitsByNames(_ units: [UnitName]) async throws -> [UnitStatus] {
        let names = units.map(\.rawValue)
        return try await call(
            managerObjectPath, managerInterface, "ListUnitsByNames", operation: "ListUnitsByNames",
            arguments: { writer throws(SystemdBusError) in try writer.append(names) },
            decode: { reader throws(SystemdBusError) in try reader.readUnitStatuses() })
    }

    /// The unit's state and, for services, MainPID, NRestarts, Result and exit status.
    public func unitProperties(_ unit: UnitName) async throws -> UnitProperties {
        let path = unit.objectPath
        let unitProperties = try await getAll(path: path, interface: unitInterface, operation: "GetAll \(unit)")
        var serviceProperties: [String: PropertyValue] = [:]
        if unit.suffix == "service" {
            serviceProperties = try await getAll(path: path, interface: serviceInterface, operation: "GetAll service \(unit)")
        }
        return UnitProperties(
            name: unit.rawValue,
            state: UnitState(
                load: LoadState(rawValue: unitProperties["LoadState"]?.string ?? ""),
                active: ActiveState(rawValue: unitProperties["ActiveState"]?.string ?? ""),
                sub: unitProperties["SubState"]?.string ?? ""),
            result: serviceProperties["Result"]?.string,
            mainPID: serviceProperties["MainPID"]?.uint32,
            nRestarts: serviceProperties["NRestarts"]?.uint32,
            execMainStatus: serviceProperties["ExecMainStatus"]?.int32,
            fragmentPath: unitProperties["FragmentPath"]?.string ?? "",
            needDaemonReload: unitProperties["NeedDaemonReload"]?.bool ?? false,
            stateChangeTimestampMicroseconds: unitProperties["StateChangeTimestamp"]?.uint64 ?? 0,
            activeEnterTimestampMicroseconds: unitProperties["ActiveEnterTimestamp"]?.uint64 ?? 0,
            activeExitTimestampMicroseconds: unitProperties["ActiveExitTimestamp"]?.uint64 ?? 0,
            inactiveEnterTimestampMicroseconds: unitProperties["InactiveEnterTimestamp"]?.uint64 ?? 0,
            inactiveExitTimestampMicroseconds: unitProperties["InactiveExitTimestamp"]?.uint64 ?? 0)
    }

    private func getAll(path: String, interface: String, operation: String) async throws -> [String: PropertyValue] {
        try await call(path, propertiesInterface, "GetAll", operation: operation,
                       arguments: { writer throws(SystemdBusError) in try writer.append(interface) },
                       decode: { reader throws(SystemdBusError) in try reader.readPropertyMap() })
    }

    // MARK: - Unit files

    /// `LinkUnitFiles` for files in the unit-file directory: makes them known to systemd without
    /// copying (fleet did the same with runtime=true, force=true). Call `reload()` afterwards.
    public func linkUnitFiles(_ units: [UnitName], runtime: Bool = true, force: Bool = true) async throws -> [UnitFileChange] {
        let paths = units.map { configuration.unitFileDirectory.managerPath + "/" + $0.rawValue }
        return try await call(
            managerObjectPath, managerInterface, "LinkUnitFiles", operation: "LinkUnitFiles",
            arguments: { writer throws(SystemdBusError) in
                try writer.append(paths)
                try writer.append(runtime)
                try writer.append(force)
            },
            decode: { reader throws(SystemdBusError) in try reader.readUnitFileChanges() })
    }

    /// `EnableUnitFiles` for units with an `[Install]` section.
    public func enableUnitFiles(_ units: [UnitName], runtime: Bool = true, force: Bool = true) async throws -> EnableResult {
        let names = units.map(\.rawValue)
        return try await call(
            managerObjectPath, managerInterface, "EnableUnitFiles", operation: "EnableUnitFiles",
            arguments: { writer throws(SystemdBusError) in
                try writer.append(names)
                try writer.append(runtime)
                try writer.append(force)
            },
            decode: { reader throws(SystemdBusError) in
                EnableResult(carriesInstallInfo: try reader.readBool(), changes: try reader.readUnitFileChanges())
            })
    }

    /// `DisableUnitFiles`.
    public func disableUnitFiles(_ units: [UnitName], runtime: Bool = true) async throws -> [UnitFileChange] {
        let names = units.map(\.rawValue)
        return try await call(
            managerObjectPath, managerInterface, "DisableUnitFiles", operation: "DisableUnitFiles",
            arguments: { writer throws(SystemdBusError) in
                try writer.append(names)
                try writer.append(runtime)
            },
            decode: { reader throws(SystemdBusError) in try reader.readUnitFileChanges() })
    }
}

// MARK: - Event loop source

extension SystemdManager: BusPollSource {
    nonisolated func pollDescriptor() -> (fd: Int32, events: Int16, timeoutMilliseconds: Int32)? {
        assumeIsolated { $0.pollDescriptorIsolated() }
    }

    nonisolated func processBus() -> Bool {
        assumeIsolated { $0.processBusIsolated() }
    }
}

// MARK: - sd-bus callbacks

/// sd-bus calls these from `sd_bus_process`, which runs on the actor's own executor thread, so
/// `assumeIsolated` holds (and checks it). `userdata` is the unretained manager: the connection
/// never outlives it (freed in `close()`/`tearDown` or `deinit`).
private let replyTrampoline: sd_bus_message_handler_t = { message, userdata, _ in
    guard let message, let userdata else { return 0 }
    let manager = Unmanaged<SystemdManager>.fromOpaque(userdata).takeUnretainedValue()
    let received = MessagePointer(raw: message)
    manager.assumeIsolated { $0.handleReply(received.raw) }
    return 0
}

private let signalTrampoline: sd_bus_message_handler_t = { message, userdata, _ in
    guard let message, let userdata else { return 0 }
    let manager = Unmanaged<SystemdManager>.fromOpaque(userdata).takeUnretainedValue()
    let received = MessagePointer(raw: message)
    manager.assumeIsolated { $0.handleSignal(received.raw) }
    return 0
}

/// An sd_bus pointer that may be named outside the actor (its deinit, the connect deadline task).
/// It is only dereferenced on the event loop thread, or in deinit when no other reference exists.
struct BusPointer: @unchecked Sendable, Equatable {
    let raw: OpaquePointer
}

/// A message handed from an sd-bus callback into `assumeIsolated` on the same thread.
struct MessagePointer: @unchecked Sendable {
    let raw: OpaquePointer
}
