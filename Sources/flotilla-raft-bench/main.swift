// flotilla-raft-bench: Raft for real, 3 processes on loopback, real fsync.
//
//   flotilla-raft-bench replica --id N --peers 1=127.0.0.1:P1,2=...,3=... --client-port P --data-dir DIR
//       [--ca-file F --cert-file F --key-file F]
//       runs one replica (RaftReplica: RaftNode + write-ahead log + transport) and serves the
//       benchmark's client protocol (ClientProtocol.swift) on 127.0.0.1:P.
//   flotilla-raft-bench driver [--base-port P] [--work-dir DIR] [--seconds S] [--trials N] [--payload-bytes B] [--proposers 1,64] [--tls]
//       spawns 3 replicas, finds the leader, and measures committed proposals per second with 1
//       and 64 concurrent proposers, the leader's commit latency (propose to applied, p50/p99),
//       and the time from kill -9 of the leader to a new leader committing (over N trials,
//       restarting the killed replica each time). --tls runs Raft over mutual TLS 1.3, with
//       certificates the driver makes with the cluster's tooling, as flotillad does.
// Contrib/bench/raft builds it in release mode and runs the driver.
import Glibc

let arguments = Array(CommandLine.arguments.dropFirst())
switch arguments.first {
case "replica":
    try await runReplica(ReplicaOptions.parse(Array(arguments.dropFirst())))
case "driver":
    try await Driver(options: DriverOptions.parse(Array(arguments.dropFirst()))).run()
default:
    usage("first argument must be replica or driver")
}
