import Foundation
import Testing
import TestSupport

/// A voter whose disk fills, or whose snapshot on disk is corrupt, stops loudly: flotillad logs
/// one clear line, exits with a status that says which (74 a failed disk, 65 corrupt data), and
/// the other voters elect and go on. Real machines, real tmpfs file systems that really fill.
@Suite(
    "disk failures on the test bed",
    .enabled(if: FlotillaCluster.missingCapability == nil,
             Comment(rawValue: "this host lacks \(FlotillaCluster.missingCapability ?? "nothing")"))
)
struct DiskFailureTests {
    static let smallDisk = "/var/lib/flotilla-disk"

    /// A unit file that runs anywhere, written in `machine` (where flotillactl will read it).
    static func writeUnit(_ cluster: FlotillaCluster, on machine: Int, _ name: String) throws {
        try cluster.bed.exec(machine, "sh", "-c", "printf '[Service]\\nExecStart=/bin/sleep 1000000\\n' > /tmp/\(name)")
    }

    /// The lines of flotillad's whole journal in `machine` that hold `text`.
    static func journalLines(_ cluster: FlotillaCluster, _ machine: Int, containing text: String) throws -> String {
        try cluster.bed.execAllowingFailure(machine, "sh", "-c", "journalctl -u flotillad --no-pager -o cat | grep -F -e \"$1\" | head -5",
                                            "sh", text).standardOutput
    }

    /// The leader's data directory fills up: its next write-ahead log append fails, it stops
    /// (status 74, "No space left on device" in the journal), the others elect a leader and take
    /// units; once there is room again it restarts, catches up and is a voter as before.
    @Test func aLeaderWhoseDiskFillsStopsAndTheOthersGoOn() async throws {
        try await onOwnThread {
            // Every voter's data on a 16 MiB tmpfs of its own, mounted before flotillad starts;
            // no NOSPACE reserve, so that writes go on until the disk is really full (the path
            // when something else fills the disk faster than the alarm can act).
            try FlotillaCluster.with(machines: 3, tag: "dfull", daemonArguments: { bed, machine in
                try bed.exec(machine, "sh", "-c", "mkdir -p \(Self.smallDisk) && mount -t tmpfs -o size=16m,mode=0700 tmpfs \(Self.smallDisk)")
                return ["--data-dir=\(Self.smallDisk)", "--data-dir-reserve-bytes=0"]
            }) { cluster in
                let bed = cluster.bed
                let full = try cluster.leaderMachine()
                let others = (1...3).filter { $0 != full }
                _ = try bed.execAllowingFailure(full, "dd", "if=/dev/zero", "of=\(Self.smallDisk)/filler", "bs=4096")
                #expect(try bed.exec(full, "df", "--output=avail", Self.smallDisk).split(separator: "\n").last?.trimmingCharacters(in: .whitespaces) == "0")

                // Registry writes until the leader's log needs a page it cannot have.
                var submitted = 0
                var lastSubmit = ""
                let stopped = try Testbed.eventually(timeoutSeconds: 60, intervalSeconds: 0.2) {
                    submitted += 1
                    let name = "fill-\(submitted).service"
                    try Self.writeUnit(cluster, on: others[0], name)
                    let output = try cluster.ctlAllowingFailure(others[0], "submit", "/tmp/\(name)")
                    lastSubmit = "status \(output.status): \(output.standardError)\(output.trimmedOutput)"
                    return try cluster.property(full, "flotillad.service", "ExecMainStatus") == "74"
                }
                let stopLine = try Self.journalLines(cluster, full, containing: "flotillad stops:")
                #expect(stopped, "m\(full) still runs after \(submitted) submits (the last: \(lastSubmit)); journal: \(stopLine) \((try? cluster.diagnostics()) ?? "")")
                #expect(stopLine.contains("the write-ahead log failed") && stopLine.contains("No space left on device"), "\(stopLine)")

                // The other two elect one of them and start a unit without the full machine.
                let successor = try cluster.leaderMachine()
                #expect(successor != full)
                try Self.writeUnit(cluster, on: others[0], "after-full.service")
                try cluster.ctl(others[0], "start", "/tmp/after-full.service")
                #expect(try Testbed.eventually(timeoutSeconds: 30) { try !cluster.machinesRunning("after-full.service").isEmpty },
                        "\((try? cluster.diagnostics()) ?? "")")

                // Room again: restarted, it catches up with everything committed without it.
                try bed.exec(full, "rm", "\(Self.smallDisk)/filler")
                _ = try bed.execAllowingFailure(full, "systemctl", "stop", "flotillad.service")
                try cluster.startDaemon(full)
                struct Status: Decodable { var appliedIndex: UInt64; var voters: [String]; var answeredBy: String }
                func status(_ machine: Int) -> Status? {
                    guard let output = try? bed.execAllowingFailure(machine, "curl", "-sf", "--max-time", "2", "--unix-socket",
                                                                    "/var/run/flotilla.sock", "http://localhost/flotilla/v1/cluster"),
                          output.succeeded else { return nil }
                    return try? JSONDecoder().decode(Status.self, from: Data(output.standardOutput.utf8))
                }
                let target = status(successor)?.appliedIndex ?? UInt64.max
                let caughtUp = Testbed.eventually(timeoutSeconds: 60, intervalSeconds: 0.3) {
                    guard let own = status(full) else { return false }
                    return own.appliedIndex >= target && own.voters.contains(cluster.addresses[full - 1])
                }
                #expect(caughtUp, "m\(full): \(String(describing: status(full))), leader applied \(target); \((try? cluster.diagnostics()) ?? "")")
            }
        }
    }

    /// A voter's snapshot file is damaged while flotillad is stopped: the next start refuses it
    /// with status 65, which the unit does not restart on, and names the file; the cluster goes
    /// on with the other two.
    @Test func aVoterWithACorruptSnapshotRefusesToStart() async throws {
        try await onOwnThread {
            try FlotillaCluster.with(machines: 3, tag: "dsnap") { cluster in
                let bed = cluster.bed
                // 40 units: well past one snapshot (every 32 entries, see `startDaemon`).
                for number in 1...40 {
                    try Self.writeUnit(cluster, on: 1, "snap-\(number).service")
                    try cluster.ctl(1, "submit", "/tmp/snap-\(number).service")
                }
                let damaged = try cluster.leaderMachine() == 3 ? 2 : 3
                let raft = "/var/lib/flotilla/raft"
                var snapshot = ""
                #expect(try Testbed.eventually(timeoutSeconds: 30) {
                    snapshot = try bed.execAllowingFailure(damaged, "sh", "-c", "ls \(raft)/*.snap | tail -1").trimmedOutput
                    return !snapshot.isEmpty
                }, "m\(damaged) took no snapshot")
                try bed.exec(damaged, "systemctl", "stop", "flotillad.service")
                // One byte in the middle of the registry's bytes, flipped.
                try bed.exec(damaged, "sh", "-c", "size=$(stat -c %s \(snapshot)); printf '\\377' | dd of=\(snapshot) bs=1 seek=$((size / 2)) conv=notrunc status=none")
                _ = try bed.execAllowingFailure(damaged, "systemctl", "reset-failed", "flotillad.service")
                _ = try bed.runAllowingFailure(
                    ["exec", String(damaged), "systemd-run", "--unit=flotillad", "-p", "Type=notify", "-p", "NotifyAccess=main",
                     "-p", "Restart=always", "-p", "RestartSec=200ms", "-p", "RestartPreventExitStatus=78 65", cluster.daemon,
                     "--public-ip=\(cluster.addresses[damaged - 1])", "--voters=\(cluster.voters)", "--raft-snapshot-entries=32"])
                let refused = try Testbed.eventually(timeoutSeconds: 30) {
                    try cluster.property(damaged, "flotillad.service", "ExecMainStatus") == "65"
                        && cluster.property(damaged, "flotillad.service", "ActiveState") == "failed"
                }
                let line = try cluster.journalOnceItContains(damaged, ["is corrupt"])
                #expect(refused, "\(line)")
                #expect(line.contains((snapshot as NSString).lastPathComponent) && line.contains("checksum mismatch"), "\(line)")
                #expect(try cluster.property(damaged, "flotillad.service", "NRestarts") == "0", "restarted over corrupt data")

                // The two others still make a majority.
                try Self.writeUnit(cluster, on: 1, "after-snap.service")
                try cluster.ctl(1, "start", "/tmp/after-snap.service")
                #expect(try Testbed.eventually(timeoutSeconds: 30) { try !cluster.machinesRunning("after-snap.service").isEmpty },
                        "\((try? cluster.diagnostics()) ?? "")")
            }
        }
    }

    static let hungDisk = "/var/lib/flotilla-stallfs"
    static let stallFile = "/run/stallfs-stalled"

    /// The leader's disk stops answering: its writes and fsyncs are held, and never fail (a FUSE
    /// file system, Contrib/stallfs, over the data directory). Its Raft loop blocks in the log's
    /// next write, and no error says so; after `disk_stall_limit` flotillad stops (status 74,
    /// one line in the journal), falls silent on gossip, and the other two elect and go on. Once
    /// the disk answers again, the exit completes, and the restarted flotillad catches up and is
    /// a voter as before.
    @Test(.enabled(if: FileManager.default.fileExists(atPath: "/dev/fuse"), "this host has no /dev/fuse (FUSE)"))
    func aLeaderWhoseDiskHangsStopsAndTheOthersGoOn() async throws {
        try await onOwnThread {
            try FlotillaCluster.with(machines: 3, tag: "dhung", testbedOptions: ["--fuse"], daemonArguments: { bed, machine in
                try bed.exec(machine, "mkdir", "-p", "/var/lib/stallfs-backing", Self.hungDisk)
                try bed.exec(machine, "systemd-run", "--unit=stallfs", Testbed.repositoryInMachine + "/Contrib/stallfs",
                             "/var/lib/stallfs-backing", Self.hungDisk, Self.stallFile)
                let mounted = try Testbed.eventually(timeoutSeconds: 10, intervalSeconds: 0.1) {
                    try bed.execAllowingFailure(machine, "mountpoint", "-q", Self.hungDisk).succeeded
                }
                guard mounted else { throw ClusterFailure(description: "stallfs did not mount in m\(machine)") }
                return ["--data-dir=\(Self.hungDisk)", "--disk-stall-limit=3s"]
            }) { cluster in
                let bed = cluster.bed
                let hung = try cluster.leaderMachine()
                let others = (1...3).filter { $0 != hung }
                try bed.exec(hung, "touch", Self.stallFile)

                // A write reaches the leader's log: its loop blocks there. Until the others have
                // elected, a submit may fail or wait; it is asked again until one succeeds.
                try Self.writeUnit(cluster, on: others[0], "after-hang.service")
                var lastStart = ""
                let started = try Testbed.eventually(timeoutSeconds: 60, intervalSeconds: 0.5) {
                    let output = try cluster.ctlAllowingFailure(others[0], "start", "--no-block", "/tmp/after-hang.service")
                    lastStart = "status \(output.status): \(output.standardError)\(output.trimmedOutput)"
                    return output.succeeded
                }
                #expect(started, "\(lastStart)")
                let stopLine = try cluster.journalOnceItContains(hung, ["flotillad stops: the Raft loop has not run"], timeoutSeconds: 30)
                #expect(stopLine.contains("flotillad stops: the Raft loop has not run for"), "\(stopLine)")
                // The exit cannot finish while the disk holds it: the thread whose write the file
                // system has taken waits uninterruptibly, as on a hung NFS mount. Every other
                // thread is gone, so nothing answers; systemd sees the unit stopping.
                var state = ""
                #expect(try Testbed.eventually(timeoutSeconds: 10, intervalSeconds: 0.1) {
                    state = try cluster.property(hung, "flotillad.service", "ActiveState")
                    return state != "active"
                }, "flotillad.service is \(state)")

                // The others lead and run the unit; the hung machine is gone from gossip (the
                // restarted flotillad waits on the disk before it joins).
                var successor = 0
                #expect(try Testbed.eventually(timeoutSeconds: 30, intervalSeconds: 0.25) {
                    successor = try cluster.leaderMachine()
                    return others.contains(successor)
                }, "leader m\(successor)")
                #expect(try Testbed.eventually(timeoutSeconds: 30) {
                    let running = try cluster.machinesRunning("after-hang.service")
                    return running.count == 1 && running[0] != hung
                }, "\((try? cluster.diagnostics()) ?? "")")
                var listed = ""
                #expect(try Testbed.eventually(timeoutSeconds: 30, intervalSeconds: 0.5) {
                    listed = try cluster.ctl(others[0], "list-machines", "--no-legend")
                    return listed.split(separator: "\n").count == 2 && !listed.contains(cluster.addresses[hung - 1])
                }, "list-machines: \(listed)")

                // The disk answers again: the waiting flotillad starts, catches up and votes.
                try bed.exec(hung, "rm", Self.stallFile)
                let rejoined = try Testbed.eventually(timeoutSeconds: 120, intervalSeconds: 0.5) {
                    listed = try cluster.ctl(others[0], "list-machines", "--no-legend")
                    let state = try cluster.property(hung, "flotillad.service", "ActiveState")
                    return listed.split(separator: "\n").count == 3 && state == "active"
                }
                #expect(rejoined, "list-machines: \(listed); \((try? cluster.diagnostics()) ?? "")")
                #expect(try cluster.property(hung, "flotillad.service", "NRestarts") != "0", "it exited (status 74) and was restarted")
            }
        }
    }
}
