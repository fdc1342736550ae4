// swift-tools-version:6.0
//
// Flotilla: a cluster-wide init system. See README.md for the map of modules;
// ../shared/STYLE.md (in the steering repo) for why the pure cores never import the shells.
import PackageDescription

let package = Package(
    name: "Flotilla",
    platforms: [.macOS(.v14)],
    products: [
        .library(name: "UnitFile", targets: ["UnitFile"]),
        .library(name: "SystemdBus", targets: ["SystemdBus"]),
        .executable(name: "flotilla-bench-systemd", targets: ["flotilla-bench-systemd"]),
        .executable(name: "flotillad", targets: ["flotillad"]),
        .executable(name: "flotillactl", targets: ["flotillactl"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-crypto", "3.12.3"..<"5.0.0"),
        .package(url: "https://github.com/apple/swift-certificates", from: "1.21.1"),
        .package(url: "https://github.com/apple/swift-asn1", from: "1.7.4"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
    ],
    targets: [
        // Shell support: the one lock type the shells share state under (a pthread mutex that
        // ThreadSanitizer sees; see Locked.swift for why not the standard library's Mutex).
        .target(name: "Locking", dependencies: [.product(name: "NIOConcurrencyHelpers", package: "swift-nio")]),
        // Pure: systemd unit syntax, unit names, [X-Fleet] options, the fleet-compatible hash.
        .target(name: "UnitFile"),
        // Pure: the replicated registry state machine (units, targets, placements, machines, sessions).
        .target(name: "Registry", dependencies: ["UnitFile"]),
        // Pure: leader-side placement of units on live machines, decided as registry commands.
        .target(name: "Scheduling", dependencies: ["Registry", "UnitFile"]),
        // Pure: per-machine reconciler of desired units against systemd's observed states, and the
        // machine's lease (agent, voter and leader sides; Agent.docc/Lease.md has the argument).
        .target(name: "Agent", dependencies: ["UnitFile", "Registry"]),
        // Benchmark: scheduling 100,000 units onto 1,000 machines (Contrib/bench/scheduling drives it).
        .executableTarget(name: "flotilla-bench-scheduling", dependencies: ["Scheduling", "Registry", "Agent", "UnitFile"]),
        // Benchmark: the unit-file parser on hostile shapes (Contrib/bench/unitfile).
        .executableTarget(name: "flotilla-bench-unitfile", dependencies: ["UnitFile"]),
        // Pure: the Raft consensus core (step/tick/propose -> Ready -> advance). Standard library only.
        .target(name: "Raft"),
        // Pure: SWIM + Lifeguard membership core (on<Event>() -> [<Event>Directive]) and its codec. Standard library only.
        .target(name: "Membership"),
        // Pure: framed, versioned, checksummed binary encoding of Raft messages and log values.
        .target(name: "Wire", dependencies: ["Raft"]),
        // Shell: the write-ahead log and snapshot files of a Raft node (segments, CRC-32C records, fsync).
        .target(name: "Storage", dependencies: ["Raft", "Wire"]),

        // Shell: libsystemd (sd-bus, sd-journal, sd-daemon) as a Clang module. Linux only.
        .systemLibrary(
            name: "CSystemd",
            pkgConfig: "libsystemd",
            providers: [.apt(["libsystemd-dev"])]
        ),
        // Shell: a machine's systemd over D-Bus, its journal, sd_notify, a journald log handler.
        .target(
            name: "SystemdBus",
            dependencies: [
                "CSystemd",
                "UnitFile",
                "Locking",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // Benchmark and helper for the SystemdBus tests (Contrib/bench/systemd-bus.sh drives it).
        .executableTarget(
            name: "flotilla-bench-systemd",
            dependencies: ["SystemdBus", .product(name: "Logging", package: "swift-log")]
        ),
        // Benchmark of the write-ahead log's fsync cost (Contrib/bench/wal drives it).
        .executableTarget(name: "flotilla-bench-wal", dependencies: ["Storage", "Raft"]),

        // Benchmark: the membership simulation at 100 to 10,000 members (Contrib/bench/membership).
        .executableTarget(name: "flotilla-bench-membership", dependencies: ["Membership"]),

        // Shell: Raft messages between peers over TCP (SwiftNIO), framed with Wire, bounded queues.
        .target(
            name: "Transport",
            dependencies: [
                "Raft", "Wire", "ClusterCertificates",
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // Shell: one Raft replica for real (RaftNode + WriteAheadLog + Transport on one event loop).
        .target(
            name: "RaftReplica",
            dependencies: [
                "Raft", "Storage", "Transport", "Locking",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // Benchmark: 3 replica processes on loopback (Contrib/bench/raft drives it).
        .executableTarget(
            name: "flotilla-raft-bench",
            dependencies: [
                "Raft", "RaftReplica", "Transport", "Wire", "ClusterCertificates",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),

        // Shell: one membership instance for real (UDP probes and gossip, TCP push-pull, SwiftNIO),
        // sealed with the cluster's gossip keyring (AES-256-GCM, swift-crypto).
        .target(
            name: "MembershipShell",
            dependencies: [
                "Membership",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),
        // Thin executable: runs a MembershipShell and prints member changes (Contrib/testbed runs it).
        .executableTarget(
            name: "flotilla-gossip",
            dependencies: ["MembershipShell", "Membership", .product(name: "NIOPosix", package: "swift-nio")]
        ),

        .testTarget(name: "UnitFileTests", dependencies: ["UnitFile", "TestSupport"]),
        .testTarget(name: "RegistryTests", dependencies: ["Registry", "UnitFile", "TestSupport"]),
        .testTarget(name: "SchedulingTests", dependencies: ["Scheduling", "Registry", "UnitFile", "TestSupport"]),
        .testTarget(name: "AgentTests", dependencies: ["Agent", "UnitFile", "Registry", "TestSupport"]),
        // Seeded scheduler + agents simulation across 50 machines (SIM_SEED replays one seed).
        .testTarget(name: "SchedulingSimulationTests", dependencies: ["Scheduling", "Registry", "Agent", "UnitFile", "TestSupport"]),
        .testTarget(name: "RaftTests", dependencies: ["Raft", "TestSupport"]),
        .testTarget(name: "MembershipTests", dependencies: ["Membership", "TestSupport"]),
        // Seeded membership cluster simulation (SIM_SEED); the simulator lives in the benchmark target.
        .testTarget(name: "MembershipSimulationTests", dependencies: ["flotilla-bench-membership", "Membership", "TestSupport"]),
        .testTarget(name: "WireTests", dependencies: ["Wire", "Raft", "TestSupport"]),
        .testTarget(name: "StorageTests", dependencies: ["Storage", "Wire", "Raft", "TestSupport"]),
        .testTarget(
            name: "TransportTests",
            dependencies: ["Transport", "Wire", "Raft", "TestSupport", "Locking", "ClusterCertificates", .product(name: "NIOCore", package: "swift-nio"),
                           .product(name: "NIOPosix", package: "swift-nio")]
        ),
        .testTarget(
            name: "RaftReplicaTests",
            dependencies: ["RaftReplica", "Transport", "Storage", "Raft", "TestSupport", "Locking", .product(name: "NIOCore", package: "swift-nio"),
                           .product(name: "NIOPosix", package: "swift-nio")]
        ),
        // Seeded, single-threaded whole-cluster simulation of the Raft core (SIM_SEED, SIM_SEEDS).
        .testTarget(name: "SimulationTests", dependencies: ["Raft", "TestSupport"]),
        .testTarget(name: "SystemdBusTests", dependencies: ["SystemdBus", "CSystemd", "TestSupport"]),
        // Helpers shared by the test targets that spawn processes (not shipped in any product).
        .target(name: "TestSupport", dependencies: ["ClusterCertificates", "Locking"], path: "Tests/TestSupport"),
        // Real machines (Contrib/testbed): real systemd, real docker, real network namespaces.
        .testTarget(name: "IntegrationTests", dependencies: ["TestSupport"]),
        // Loopback shells, and flotilla-gossip on real machines (Contrib/testbed).
        .testTarget(
            name: "MembershipShellTests",
            dependencies: ["MembershipShell", "Membership", "TestSupport", "Locking", .product(name: "NIOCore", package: "swift-nio"),
                           .product(name: "NIOPosix", package: "swift-nio")]
        ),

        // Pure: fleet's v1 API entities (JSON) and Flotilla's additions; unit files <-> fleet options.
        .target(name: "FleetAPI", dependencies: ["UnitFile"]),
        // Shell: the HTTP API (fleet v1 + /flotilla/v1) over a unix socket, TCP or TLS, SwiftNIO HTTP/1.1.
        .target(
            name: "HTTPAPI",
            dependencies: [
                "FleetAPI", "UnitFile", "ClusterCertificates",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            // The OpenAPI document of the whole API, compiled into the binary and served at
            // /flotilla/v1/openapi.json; the file itself is what client generators read.
            resources: [.embedInCode("openapi.json")]
        ),
        // Shell: the API client used by flotillactl, by peers forwarding to the leader, and by orchestrators.
        .target(
            name: "Client",
            dependencies: [
                "FleetAPI", "UnitFile", "Locking",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ]
        ),
        // Shell: runs one peer for real: membership, Raft + registry (voters), scheduling (leader),
        // the agent against the machine's systemd, and the HTTP API; configuration and services.
        .target(
            name: "Daemon",
            dependencies: [
                "FleetAPI", "HTTPAPI", "Client", "UnitFile", "Registry", "Scheduling", "Agent", "Raft",
                "RaftReplica", "Storage", "Transport", "Membership", "MembershipShell", "SystemdBus", "ClusterCertificates", "Locking",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // Thin executable: the peer daemon on every machine.
        .executableTarget(
            name: "flotillad",
            dependencies: ["Daemon", "SystemdBus", "CSystemd", .product(name: "Logging", package: "swift-log"),
                           .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),
        // The cluster's CA and the certificates it issues (ECDSA P-256; role and machine in the SANs).
        .target(
            name: "ClusterCertificates",
            dependencies: [
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ]
        ),
        // fleetctl's commands, flags and output against Flotilla's API (the library behind flotillactl).
        .target(
            name: "CLI",
            dependencies: ["Client", "FleetAPI", "UnitFile", "ClusterCertificates", "Locking",
                           .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),
        // Thin executable: runs CLI's root command.
        .executableTarget(name: "flotillactl", dependencies: ["CLI"]),
        .testTarget(name: "FleetAPITests", dependencies: ["FleetAPI", "UnitFile", "TestSupport"]),
        .testTarget(
            name: "HTTPAPITests",
            dependencies: ["HTTPAPI", "Client", "FleetAPI", "UnitFile", "TestSupport", "ClusterCertificates", "Locking", .product(name: "NIOCore", package: "swift-nio"),
                           .product(name: "NIOPosix", package: "swift-nio")]
        ),
        .testTarget(name: "CLITests", dependencies: ["CLI", "ClusterCertificates", .product(name: "X509", package: "swift-certificates"), "Client", "FleetAPI", "HTTPAPI", "UnitFile", "TestSupport"]),
        .testTarget(name: "DaemonTests", dependencies: ["Daemon", "MembershipShell", "FleetAPI", "HTTPAPI", "Raft", "RaftReplica", "Registry", "Scheduling", "Storage", "UnitFile", "Wire", "TestSupport", "ClusterCertificates", "Locking"]),
        // The fuzzing harnesses: arbitrary bytes into each decoder and core (issue 14 item 8).
        .target(
            name: "FuzzHarnesses",
            dependencies: [
                "Membership", "Raft", "Wire", "Storage", "Registry", "UnitFile", "FleetAPI", "HTTPAPI",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // libFuzzer's driver for them (Contrib/fuzz/run builds it with -sanitize=fuzzer), or a replayer.
        .executableTarget(name: "flotilla-fuzz", dependencies: ["FuzzHarnesses"]),
        // Replays the committed corpora (Contrib/fuzz/corpus) through every harness.
        .testTarget(name: "FuzzHarnessTests", dependencies: ["FuzzHarnesses", "TestSupport"]),
        // flotillad on real machines (Contrib/testbed) driven with flotillactl: issue 7's end-to-end checks.
        .testTarget(name: "EndToEndTests", dependencies: ["FleetAPI", "TestSupport", "Locking"]),
    ],
    swiftLanguageModes: [.v6]
)
