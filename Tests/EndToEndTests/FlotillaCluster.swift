import Foundation
import TestSupport

/// A test bed whose machines each run flotillad under their own systemd, driven with flotillactl
/// inside the machines, the way a user would.
struct FlotillaCluster {
    let bed: Testbed
    let daemon: String
    let control: String
    let addresses: [String]
    /// Extra flags for each machine's flotillad, by machine index - 1.
    var daemonArguments: [[String]] = []

    static let missingCapability: String? = {
        if let missing = Testbed.missingHostCapability { return missing }
        if Testbed.binaryInMachine(named: "flotillad") == nil { return "flotillad built beside the test binary" }
        if Testbed.binaryInMachine(named: "flotillactl") == nil { return "flotillactl built beside the test binary" }
        return nil
    }()

    /// Boots `machines` machines, starts flotillad on each (all of the first three are voters),
    /// waits until the API answers with every machine listed, runs `body`, tears down.
    /// `daemonArguments` adds flags to each machine's flotillad (`--metadata=...`), asked once per
    /// machine with the booted test bed and the machine's index.
    static func with<Result>(machines: Int, tag: String, testbedOptions: [String] = [],
                             daemonArguments: (Testbed, Int) throws -> [String] = { _, _ in [] },
                             _ body: (FlotillaCluster) throws -> Result) throws -> Result {
        try Testbed.with(machines: machines, tag: tag, options: testbedOptions) { bed in
            let cluster = try credentialed(bed, daemonArguments: try (1...machines).map { try daemonArguments(bed, $0) })
            for machine in 1...machines { try cluster.startDaemon(machine) }
            let ready = try Testbed.eventually(timeoutSeconds: 60, intervalSeconds: 0.2) {
                let output = try cluster.ctlAllowingFailure(1, "list-machines", "--no-legend")
                return output.succeeded && output.trimmedOutput.split(separator: "\n").count == machines
            }
            guard ready else {
                throw ClusterFailure(description: "list-machines never showed \(machines) machines: \(try cluster.diagnostics())")
            }
            return try body(cluster)
        }
    }

    var voters: String { addresses.prefix(3).joined(separator: ",") }

    /// The cluster of `bed`'s machines, none of them started yet, each with the credentials the
    /// secure mode needs (the tested mode): one gossip keyring and a certificate per machine from
    /// one CA, made as an operator makes them, at flotillad's default paths.
    static func credentialed(_ bed: Testbed, daemonArguments: [[String]] = []) throws -> FlotillaCluster {
        let addresses = try (1...bed.machineCount).map { try bed.address($0) }
        let cluster = FlotillaCluster(bed: bed, daemon: Testbed.binaryInMachine(named: "flotillad")!,
                                      control: Testbed.binaryInMachine(named: "flotillactl")!, addresses: addresses,
                                      daemonArguments: daemonArguments)
        let keyring = try cluster.ctl(1, "keyring", "generate") + "\n"
        for machine in 1...bed.machineCount { try cluster.installGossipKeyring(keyring, on: machine) }
        try cluster.installPeerCertificates()
        return cluster
    }

    /// Where each machine's peer TLS files are: flotillad's default paths (ca_file, cert_file, key_file).
    static let tlsDirectory = "/etc/flotilla/tls"

    /// A cluster CA made with flotillactl on machine 1, and for every machine a server
    /// certificate naming its machine ID and address (any machine may be promoted to voter).
    func installPeerCertificates() throws {
        let work = "/root/flotilla-ca"
        try bed.exec(1, "mkdir", "-p", work)
        try ctl(1, "tls", "ca", "create", "--directory", work)
        let authority = try bed.exec(1, "cat", "\(work)/flotilla-ca.pem")
        for machine in 1...bed.machineCount {
            let machineID = try bed.exec(machine, "cat", "/etc/machine-id")
            try ctl(1, "tls", "cert", "create", "--server", "--machine", machineID, "--ip", addresses[machine - 1],
                    "--ca", "\(work)/flotilla-ca.pem", "--ca-key", "\(work)/flotilla-ca-key.pem", "--directory", work, "--name", "m\(machine)")
            let certificate = try bed.exec(1, "cat", "\(work)/m\(machine).pem")
            let key = try bed.exec(1, "cat", "\(work)/m\(machine)-key.pem")
            try bed.exec(machine, ["sh", "-c", "umask 077 && mkdir -p \(Self.tlsDirectory) && printf '%s\\n' \"$1\" > \(Self.tlsDirectory)/flotilla-ca.pem && printf '%s\\n' \"$2\" > \(Self.tlsDirectory)/peer.pem && printf '%s\\n' \"$3\" > \(Self.tlsDirectory)/peer-key.pem",
                                   "sh", authority, certificate, key])
        }
    }

    /// Gives `machine` a new certificate of the cluster's CA with `role` ("--server", "--agent")
    /// for its own machine ID and address, and restarts its flotillad with it.
    func reissueCertificate(_ machine: Int, role: String) throws {
        let work = "/root/flotilla-ca"
        let machineID = try bed.exec(machine, "cat", "/etc/machine-id")
        let name = "m\(machine)\(role)"
        try ctl(1, "tls", "cert", "create", role, "--machine", machineID, "--ip", addresses[machine - 1],
                "--ca", "\(work)/flotilla-ca.pem", "--ca-key", "\(work)/flotilla-ca-key.pem", "--directory", work, "--name", name)
        let certificate = try bed.exec(1, "cat", "\(work)/\(name).pem")
        let key = try bed.exec(1, "cat", "\(work)/\(name)-key.pem")
        try bed.exec(machine, ["sh", "-c", "umask 077 && printf '%s\\n' \"$1\" > \(Self.tlsDirectory)/peer.pem && printf '%s\\n' \"$2\" > \(Self.tlsDirectory)/peer-key.pem",
                               "sh", certificate, key])
        try bed.exec(machine, "systemctl", "restart", "flotillad.service")
    }

    /// Writes `text` as the machine's /etc/flotilla/gossip.keyring, mode 0600.
    func installGossipKeyring(_ text: String, on machine: Int) throws {
        try bed.exec(machine, ["sh", "-c", "umask 077 && mkdir -p /etc/flotilla && printf '%s' \"$1\" > /etc/flotilla/gossip.keyring",
                               "sh", text])
    }

    /// flotillad as a unit of the machine's systemd (Type=notify, restarted on failure), as
    /// Units/flotillad.service runs it. Snapshots every 32 entries, so that the scenarios also
    /// run through log compaction and, on restarts, recovery from a snapshot.
    func startDaemon(_ machine: Int) throws {
        _ = try bed.execAllowingFailure(machine, "systemctl", "reset-failed", "flotillad.service")
        try bed.exec(machine, ["systemd-run", "--unit=flotillad", "-p", "Type=notify", "-p", "NotifyAccess=main",
                     "-p", "Restart=always", "-p", "RestartSec=200ms", daemon, "--public-ip=\(addresses[machine - 1])",
                     "--voters=\(voters)", "--raft-snapshot-entries=32"] + (daemonArguments.indices.contains(machine - 1) ? daemonArguments[machine - 1] : []))
    }

    @discardableResult
    func ctl(_ machine: Int, _ arguments: String...) throws -> String {
        try bed.exec(machine, [control] + arguments)
    }

    func ctlAllowingFailure(_ machine: Int, _ arguments: String...) throws -> Testbed.Output {
        try bed.runAllowingFailure(["exec", String(machine), control] + arguments)
    }

    /// `systemctl show -p NAME --value UNIT` in `machine`.
    func property(_ machine: Int, _ unit: String, _ name: String) throws -> String {
        try bed.exec(machine, "systemctl", "show", "-p", name, "--value", unit)
    }

    /// The machines (1-based) where `unit` is active in systemd.
    func machinesRunning(_ unit: String) throws -> [Int] {
        try (1...bed.machineCount).filter { machine in
            (try? bed.execAllowingFailure(machine, "systemctl", "is-active", unit))?.trimmedOutput == "active"
        }
    }

    /// flotillad's journal in `machine` once it holds every one of `texts`, or as it is after
    /// `timeoutSeconds`. journald reads a process's standard error after the process is gone and
    /// after systemd's own lines about its exit, so a line written just before exiting can show
    /// up a moment after the unit is already failed.
    func journalOnceItContains(_ machine: Int, _ texts: [String], timeoutSeconds: Double = 30) throws -> String {
        var journal = ""
        _ = try Testbed.eventually(timeoutSeconds: timeoutSeconds, intervalSeconds: 0.2) {
            journal = try bed.execAllowingFailure(machine, "journalctl", "-u", "flotillad", "--no-pager", "-n", "200").standardOutput
            return texts.allSatisfy(journal.contains)
        }
        return journal
    }

    func diagnostics() throws -> String {
        var text = ""
        for machine in 1...bed.machineCount {
            let log = try bed.execAllowingFailure(machine, "journalctl", "-u", "flotillad", "--no-pager", "-n", "30")
            text += "--- m\(machine) flotillad journal:\n\(log.standardOutput)\n"
            // A crash's reason and frames scroll out of the last 30 lines behind its register dump.
            let crash = try bed.execAllowingFailure(machine, "sh", "-c",
                "journalctl -u flotillad --no-pager -o cat | grep -E -A60 'Fatal error|Crash|💣' | grep -E 'Fatal error|Crash|💣| at /|^ *[0-9]+ ' | head -80")
            if !crash.standardOutput.isEmpty { text += "--- m\(machine) flotillad crashed:\n\(crash.standardOutput)\n" }
        }
        return text
    }
}

extension Testbed {
    @discardableResult
    func exec(_ machine: Int, _ command: [String]) throws -> String {
        try run(["exec", String(machine)] + command).trimmedOutput
    }
}

struct ClusterFailure: Error, CustomStringConvertible {
    var description: String
}
