import Foundation
import HTTPAPI
import Logging
import Membership
import MembershipShell
import NIOCore
import NIOPosix
import RaftReplica
import Registry
import Storage
import ServiceLifecycle
import Locking
import SystemdBus
import UnitFile

/// Runs one `flotillad` until SIGTERM or SIGINT.
///
/// Start order: systemd's bus (the agent cannot work without it), the voter's log and Raft
/// replica, membership (so peers learn this machine only once it can answer), the peer and
/// user APIs, then the loops; READY=1 goes to systemd last. Shutdown runs in reverse. A stopping
/// daemon does not leave the gossip pool: a restart must look like a short silence, not a
/// departure, or the leader would move this machine's units (fleet restarted every unit when
/// fleetd restarted, fleet issue #1086).
public enum Daemon {
    public static func run(configuration: DaemonConfiguration, logger: Logger) async throws {
        let service = DaemonService(configuration: configuration, logger: logger)
        let group = ServiceGroup(configuration: .init(services: [.init(service: service)],
                                                      gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
    }

    /// The process's exit status after `run` threw: 78 (EX_CONFIG) for what a restart cannot fix
    /// (a machine ID that another live machine uses, no usable gossip keyring); 74 (EX_IOERR) when
    /// the data directory failed to read or write (a full or failing disk, which a restart may get
    /// past once the operator has made room); 65 (EX_DATAERR) when what is on it is corrupt or does
    /// not restore (a restart meets it again); 1 otherwise.
    public static func exitStatus(for error: any Error) -> Int32 {
        if error is DuplicateMachineID || error is GossipKeyringUnavailable || error is PeerTLSUnusable {
            return MachineIdentityCheck.refusedExitStatus
        }
        if let stopped = error as? ReplicaStopped { return stopped.failure.exitStatus }
        if let error = error as? ReplicaError {
            switch error {
            case .storage(let storage): return storage.exitStatus
            case .snapshotNotRestored, .unusableState: return dataErrorExitStatus
            case .invalidConfiguration, .transport, .stopped: return 1
            }
        }
        return 1
    }

    static let ioErrorExitStatus: Int32 = 74
    static let dataErrorExitStatus: Int32 = 65
}

/// The replica stopped taking part while the daemon ran (`RaftReplica.failures`).
struct ReplicaStopped: Error, CustomStringConvertible {
    let failure: ReplicaFailure
    var description: String { "\(failure); this node no longer votes, acknowledges or leads" }
}

extension ReplicaFailure {
    var exitStatus: Int32 {
        switch self {
        case .storage(let error): error.exitStatus
        case .snapshotNotRestored: Daemon.dataErrorExitStatus
        }
    }
}

extension StorageError {
    /// A failed system call is the disk's (or a full file system's); anything else is what the
    /// files hold.
    var exitStatus: Int32 {
        switch self {
        case .io, .unusableAfterFailure: Daemon.ioErrorExitStatus
        case .directoryLocked, .closed: 1
        default: Daemon.dataErrorExitStatus
        }
    }
}

struct DaemonService: Service {
    let configuration: DaemonConfiguration
    let logger: Logger

    func run() async throws {
        let machineID = try MachineIdentity.read(path: configuration.machineIDPath)
        let gossipKeyring = try GossipKeyringFile.load(configuration, logger: logger)
        let peerTLS = try PeerTLSFiles.load(configuration, machineID: machineID.rawValue)
        if peerTLS == nil {
            logger.warning("peer TLS is off (peer_insecure_plaintext=true): Raft on raft_port \(configuration.raftPort) and the peer API on peer_port \(configuration.peerPort) accept anyone who reaches them")
        }
        // The Raft log lives here; only root reads it (unit files may carry secrets).
        try FileManager.default.createDirectory(atPath: configuration.dataDirectory, withIntermediateDirectories: true,
                                                attributes: [.posixPermissions: 0o700])
        let ioGroup = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        var busConfiguration = SystemdBusConfiguration()
        busConfiguration.bus = configuration.systemdUser ? .user : .system
        busConfiguration.unitFileDirectory = UnitFileDirectory(writePath: configuration.unitsDirectory,
                                                               managerPath: configuration.unitsDirectory)
        let manager = SystemdManager(configuration: busConfiguration, logger: logger)
        try await manager.connect()
        _ = try? SystemdNotifier.notify([.status("starting: connected to systemd")])

        let nodeBox = Locked<Node?>(nil)
        let registry = RegistryStore(logger: logger) { command, state in
            nodeBox.withLock { $0 }?.recordRegistryChange(command, state)
        }
        let voter = try await Voter.start(configuration: configuration, peerTLS: peerTLS, registry: registry, ioGroup: ioGroup, logger: logger)

        var memberMetadata = configuration.metadata
        memberMetadata[MemberKeys.peerPort] = String(configuration.peerPort)
        memberMetadata[MemberKeys.raftPort] = String(configuration.raftPort)
        let membershipConfiguration = MembershipShellConfiguration(
            bindHost: configuration.publicIP, bindPort: configuration.gossipPort, memberID: machineID,
            metadata: MemberMetadata(memberMetadata), role: configuration.isFoundingVoter ? .voter : .agent, version: FlotillaVersion.current,
            membership: configuration.gossipProfile == "lan" ? .lan : .fastLAN, keyring: gossipKeyring)
        let membership = try await MembershipShell.start(configuration: membershipConfiguration, eventLoop: ioGroup.next())
        let seeds = (configuration.seeds.isEmpty ? configuration.effectiveVoters : configuration.seeds).compactMap { seed -> MemberAddress? in
            let parts = seed.split(separator: ":")
            let port = parts.count == 2 ? UInt16(parts[1]) : UInt16(configuration.gossipPort)
            guard let port else { return nil }
            return try? MemberAddress(host: String(parts[0]), port: port)
        }
        try await membership.join(seeds: seeds)
        let startClash: MemberAddress?
        do {
            startClash = try await MachineIdentityCheck.settleJoin(membership: membership)
        } catch {
            // Stop what already runs (the voter's replica, the gossip sockets) before failing.
            await membership.stop()
            await voter.stop()
            await manager.close()
            try? await ioGroup.shutdownGracefully()
            throw error
        }
        if let startClash {
            logger.warning("another live member answers for this machine's ID; the voters' lease decides which one runs", metadata: [
                "machine": "\(machineID.rawValue)", "other": "\(startClash)",
            ])
        }

        let leaseTiming = try configuration.leaseTiming()
        let ledger = try LeaseLedgerStore(timing: leaseTiming, dataDirectory: configuration.dataDirectory, logger: logger)
        let node = Node(configuration: configuration, machineID: machineID.rawValue, logger: logger, membership: membership,
                        voter: voter, registry: registry, manager: manager, ioGroup: ioGroup, ledger: ledger, leaseTiming: leaseTiming,
                        peerTLS: peerTLS)
        nodeBox.withLock { $0 = node }
        let systemdLease = SystemdLeaseUnit(manager: manager, runtimeDirectory: Self.runtimeUnitDirectory(configuration),
                                            notifySocketPath: Self.managerNotifySocket(configuration),
                                            leaseMilliseconds: leaseTiming.leaseMilliseconds, logger: logger)
        let agent = MachineAgent(machineID: machineID.rawValue, holder: configuration.publicIP, manager: manager, uplink: node.agentUplink(),
                                 unitsDirectory: configuration.unitsDirectory, systemdLease: systemdLease, timing: leaseTiming,
                                 voters: configuration.effectiveVoters,
                                 reconcileIntervalMilliseconds: configuration.agentReconcileIntervalMilliseconds, logger: logger)
        node.attach(agent: agent)

        let backend = DaemonBackend(node: node)
        let apiConfiguration = HTTPAPIConfiguration(requestBodyBytesMax: ClusterLimits.standard.httpRequestBodyBytesMax,
                                                    pageItemsMax: configuration.tokenLimit)
        let peerServer = try await HTTPAPIServer.start(
            listeners: [.tcp(host: configuration.publicIP, port: configuration.peerPort)], backend: backend,
            configuration: apiConfiguration, audience: .peers(tls: peerTLS), eventLoopGroup: ioGroup, logger: logger)
        node.peerServer.withLock { $0 = peerServer }
        if !configuration.apiListen.isEmpty, configuration.apiTLSCertificatePath.isEmpty {
            logger.warning("api_listen \(configuration.apiListen) serves the API in plain HTTP without authentication (api_insecure_plaintext=true): anyone who reaches it controls every machine")
        }
        let userServer = try await HTTPAPIServer.start(
            listeners: Self.userListeners(configuration), backend: backend, configuration: apiConfiguration,
            audience: .users(machineID: machineID.rawValue), eventLoopGroup: ioGroup, logger: logger)

        _ = try? SystemdNotifier.notify([.ready, .status("running: \(machineID.rawValue)")])
        logger.notice("flotillad running", metadata: [
            "machine": "\(machineID.rawValue)", "founding_voter": "\(configuration.isFoundingVoter)",
            "public_ip": "\(configuration.publicIP)", "voters": "\(configuration.effectiveVoters)",
        ])

        // The first task to end is the shutdown signal (the others loop until cancelled); only
        // the identity refusal and a failed replica end with a value, the error thrown once
        // everything has stopped.
        // A log write or fsync that never returns holds the Raft loop for good, and no failure
        // ever comes (see LoopStallWatch). Nothing graceful is left then: the hand-over, the
        // replica's stop and the final snapshot all wait on that loop, and the concurrency pool
        // may be held too. So the watch's thread exits the process itself; gossip falls silent,
        // the lease is no longer renewed (the lease unit's watchdog fences the units), and
        // autopilot replaces this voter.
        let stallWatch = LoopStallWatch(limit: .milliseconds(configuration.diskStallLimitMilliseconds))
        stallWatch.start(watching: voter.replica.eventLoop) { stalled in
            logger.critical("flotillad stops: \(stalled)")
            _ = try? SystemdNotifier.notify([.stopping, .status("failed: \(stalled)")])
            exit(Daemon.ioErrorExitStatus)
        }
        let refusal: (any Error & Sendable)? = await withTaskGroup(of: (any Error & Sendable)?.self) { group in
            group.addTask { await node.followMembership(); return nil }
            group.addTask { await node.scheduleLoop(); return nil }
            group.addTask { await node.autopilotLoop(); return nil }
            group.addTask { await node.ledgerLoop(); return nil }
            group.addTask { await node.revocationLoop(); return nil }
            group.addTask { await agent.run(); return nil }
            group.addTask { await Self.watchdog(); return nil }
            group.addTask {
                await MachineIdentityCheck.watchClash(membership: membership, agent: agent)
                try? await Task.sleep(for: .seconds(1_000_000_000))
                return nil
            }
            group.addTask {
                // Another live process with this machine ID holds the lease: stop.
                for await other in agent.identityRefusals {
                    return DuplicateMachineID(machineID: machineID.rawValue, otherAddress: other)
                }
                try? await Task.sleep(for: .seconds(1_000_000_000))
                return nil
            }
            group.addTask {
                // The log failed or a snapshot did not restore: this node can no longer vote,
                // acknowledge or lead. Stop, loudly, rather than linger as a silent non-participant.
                for await failure in voter.replica.failures { return ReplicaStopped(failure: failure) }
                try? await Task.sleep(for: .seconds(1_000_000_000))
                return nil
            }
            group.addTask { try? await gracefulShutdown(); return nil }
            let first = await group.next() ?? nil
            group.cancelAll()
            return first
        }
        stallWatch.stop()

        if let failed = refusal as? ReplicaStopped {
            // One clear message; the watchdog and the loops have stopped with the group, READY is
            // withdrawn, and the exit status tells systemd (Units/flotillad.service) what to do.
            logger.critical("flotillad stops: \(failed)")
            _ = try? SystemdNotifier.notify([.stopping, .status("failed: \(failed)")])
        } else {
            logger.notice("flotillad stopping")
            _ = try? SystemdNotifier.notify([.stopping])
        }
        // Leave the gossip pool only when the whole machine is going down (a start job for
        // shutdown.target is queued): then the leader moves its units at once. A daemon that is
        // only restarting stays silent, so nothing moves (see the type's comment).
        if await Self.machineIsShuttingDown(systemdUser: configuration.systemdUser) {
            logger.notice("the machine is shutting down: stopping its units and releasing its lease so they move now")
            await agent.release()
            try? await membership.leave()
        }
        // A leader hands over first (thesis §3.10), so the cluster does not wait out an election
        // timeout with nobody accepting writes.
        // (A failed replica cannot: its core no longer runs. The others elect within an election timeout.)
        if let status = await voter.replica.status(), status.role == .leader, status.failure == nil,
           let successor = status.membership.voters.filter({ $0 != voter.nodeID }).sorted().first {
            do {
                try await voter.replica.transferLeadership(to: successor)
                logger.notice("leadership handed over", metadata: ["to": "\(successor)"])
            } catch {
                logger.notice("leadership hand-over failed; the others will elect", metadata: ["error": "\(error)"])
            }
        }
        await userServer.shutdown()
        await peerServer.shutdown()
        await voter.stop()
        await membership.stop()
        await manager.close()
        try? await ioGroup.shutdownGracefully()
        if let refusal { throw refusal }
    }

    /// Whether the machine is going down: `systemctl is-system-running` says "stopping". It is
    /// asked through systemctl, which as root talks to systemd over its private socket: during a
    /// shutdown dbus-daemon is stopped in parallel with flotillad, and the system bus is usually
    /// gone by the time SIGTERM arrives here (seen on the test bed). Bounded to one second.
    static func machineIsShuttingDown(systemdUser: Bool) async -> Bool {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/systemctl")
        process.arguments = (systemdUser ? ["--user"] : []) + ["is-system-running"]
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        do { try process.run() } catch { return false }
        let deadline = ContinuousClock.now + .seconds(1)
        while process.isRunning, ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(10))
        }
        if process.isRunning {
            process.terminate()
            return false
        }
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        return text.trimmingCharacters(in: .whitespacesAndNewlines) == "stopping"
    }

    /// Where the lease unit and the units' lease drop-ins go: the manager's runtime unit directory.
    static func runtimeUnitDirectory(_ configuration: DaemonConfiguration) -> String {
        guard configuration.systemdUser else { return "/run/systemd/system" }
        return (ProcessInfo.processInfo.environment["XDG_RUNTIME_DIR"] ?? "/run/user/\(getuid())") + "/systemd/user"
    }

    /// The manager's notify socket, to which flotillad pings the lease unit's watchdog.
    static func managerNotifySocket(_ configuration: DaemonConfiguration) -> String {
        guard configuration.systemdUser else { return SystemdNotifier.systemNotifySocketPath }
        return (ProcessInfo.processInfo.environment["XDG_RUNTIME_DIR"] ?? "/run/user/\(getuid())") + "/systemd/notify"
    }

    static func userListeners(_ configuration: DaemonConfiguration) -> [APIListener] {
        var listeners: [APIListener] = []
        // systemd socket activation (flotilla.socket): descriptors start at 3.
        let environment = ProcessInfo.processInfo.environment
        if let pid = environment["LISTEN_PID"], pid == String(getpid()), let count = environment["LISTEN_FDS"].flatMap(Int.init), count > 0 {
            listeners += (0..<count).map { .inheritedSocket(descriptor: CInt(3 + $0)) }
        } else if !configuration.apiSocketPath.isEmpty {
            listeners.append(.unix(path: configuration.apiSocketPath, mode: 0o660))
        }
        if let (host, port) = DaemonConfiguration.hostAndPort(configuration.apiListen) {
            // validate() made sure the two paths come together.
            if configuration.apiTLSCertificatePath.isEmpty {
                listeners.append(.tcp(host: host, port: port))
            } else {
                // With peer TLS, the cluster's CA also vouches for callers' client certificates.
                listeners.append(.tls(host: host, port: port, certificateChainPath: configuration.apiTLSCertificatePath,
                                      privateKeyPath: configuration.apiTLSKeyPath,
                                      clientCAPath: configuration.peerTLSEnabled ? configuration.caFilePath : nil))
            }
        }
        return listeners
    }

    /// Pings systemd's watchdog at half its interval while the daemon runs.
    static func watchdog() async {
        guard let interval = try? SystemdNotifier.watchdogInterval() else {
            try? await Task.sleep(for: .seconds(1_000_000_000))
            return
        }
        while !Task.isCancelled {
            _ = try? SystemdNotifier.notify([.watchdog])
            try? await Task.sleep(for: interval / 2)
        }
    }
}

public enum FlotillaVersion {
    public static let current = "0.1.0"
}
