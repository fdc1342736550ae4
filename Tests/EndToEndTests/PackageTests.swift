import Foundation
import Testing
import TestSupport

/// The Debian package (Contrib/build-deb) on machines that have no Swift toolchain: installed with
/// dpkg, configured through /etc/flotilla/flotilla.conf and enabled with systemctl, as an operator
/// would, the machines form a cluster and run a unit.
@Suite(.enabled(if: Testbed.missingHostCapability == nil, "needs \(Testbed.missingHostCapability ?? "")"))
struct PackageTests {
    /// Builds the package (incremental after the first build, which compiles the release build of
    /// everything: minutes) and returns its path inside the machines. A full `Contrib/test` has
    /// built it before the suite started, so that here it is a no-op.
    static func buildPackage() throws -> String {
        let repo = Testbed.repositoryRoot.standardizedFileURL.path
        let output = "\(repo)/.build-static/deb-test"
        // Niced: run alone (`swift test --filter PackageTests` on a fresh clone) this is a release
        // build of everything, minutes of both cores, beside whatever else the run selected.
        let result = try ChildProcess.run(["/usr/bin/nice", "-n", "10", repo + "/Contrib/build-deb", output], timeoutSeconds: 3_600)
        guard result.status == 0 else {
            throw PackageFailure(description: "Contrib/build-deb failed:\n\(result.standardOutput)\n\(result.standardError)")
        }
        let path = result.standardOutput.split(separator: "\n").last.map(String.init) ?? ""
        guard path.hasPrefix(repo + "/"), path.hasSuffix(".deb") else {
            throw PackageFailure(description: "Contrib/build-deb printed no package: \(result.standardOutput)")
        }
        return Testbed.repositoryInMachine + "/" + path.dropFirst(repo.count + 1)
    }

    @Test func theDebianPackageFormsAClusterOnMachinesWithoutTheToolchain() async throws {
        try await onOwnThread {
            let package = try Self.buildPackage()
            try Testbed.with(machines: 3, tag: "deb") { bed in
                let addresses = try (1...3).map { try bed.address($0) }
                var keyring = ""
                for machine in 1...3 {
                    // Hide the toolchain the machines would otherwise see through their root's
                    // lower layer (the host's /): a build-tree binary no longer starts, which
                    // shows that the packaged ones do not need it.
                    try bed.exec(machine, "sh", "-c", "mkdir -p /run/no-toolchain && mount --bind /run/no-toolchain /opt/swift")
                    let dynamic = try bed.execAllowingFailure(machine, "\(Testbed.repositoryInMachine)/.build/debug/flotillactl", "--version")
                    #expect(!dynamic.succeeded, "a toolchain-linked binary still runs in machine \(machine)")

                    try bed.exec(machine, "dpkg", "-i", package)
                    // The operator's first step: one gossip keyring, made with the packaged
                    // flotillactl on the first machine and copied to the others.
                    if machine == 1 { keyring = try bed.exec(1, "flotillactl", "keyring", "generate") + "\n" }
                    try bed.exec(machine, ["sh", "-c", "umask 077 && printf '%s' \"$1\" > /etc/flotilla/gossip.keyring", "sh", keyring])
                    // The second: the cluster's CA, kept on the first machine, and a certificate
                    // for each machine, installed where flotillad looks by default.
                    let work = "/root/flotilla-ca"
                    if machine == 1 {
                        try bed.exec(1, "mkdir", "-p", work)
                        try bed.exec(1, "flotillactl", "tls", "ca", "create", "--directory", work)
                    }
                    let machineID = try bed.exec(machine, "cat", "/etc/machine-id")
                    try bed.exec(1, "flotillactl", "tls", "cert", "create", "--server", "--machine", machineID, "--ip", addresses[machine - 1],
                                 "--ca", "\(work)/flotilla-ca.pem", "--ca-key", "\(work)/flotilla-ca-key.pem", "--directory", work, "--name", "m\(machine)")
                    let files = try ["flotilla-ca.pem", "m\(machine).pem", "m\(machine)-key.pem"].map { try bed.exec(1, "cat", "\(work)/\($0)") }
                    try bed.exec(machine, ["sh", "-c", "umask 077 && mkdir -p /etc/flotilla/tls && printf '%s\\n' \"$1\" > /etc/flotilla/tls/flotilla-ca.pem && printf '%s\\n' \"$2\" > /etc/flotilla/tls/peer.pem && printf '%s\\n' \"$3\" > /etc/flotilla/tls/peer-key.pem",
                                           "sh"] + files)
                    try bed.exec(machine, "sh", "-c", """
                        printf 'public_ip=%s\\nvoters=%s\\n' \(addresses[machine - 1]) \(addresses.joined(separator: ",")) >> /etc/flotilla/flotilla.conf
                        """)
                    try bed.exec(machine, "systemctl", "enable", "--now", "flotilla.socket", "flotillad.service")
                }
                let formed = try Testbed.eventually(timeoutSeconds: 60, intervalSeconds: 0.2) {
                    let output = try bed.execAllowingFailure(1, "flotillactl", "list-machines", "--no-legend")
                    return output.succeeded && output.trimmedOutput.split(separator: "\n").count == 3
                }
                let journal = formed ? "" : try bed.execAllowingFailure(1, "journalctl", "-u", "flotillad", "--no-pager", "-n", "40").standardOutput
                #expect(formed, "the packaged cluster did not form: \(journal)")

                // The daemon systemd runs is the packaged one; the socket belongs to the package's group.
                let mainPID = try bed.exec(1, "systemctl", "show", "-p", "MainPID", "--value", "flotillad.service")
                #expect(try bed.exec(1, "readlink", "/proc/\(mainPID)/exe") == "/usr/bin/flotillad")
                #expect(try bed.exec(1, "stat", "-c", "%G", "/var/run/flotilla.sock") == "flotilla")
                #expect(try bed.exec(1, "getent", "group", "flotilla").hasPrefix("flotilla:"))

                // A unit, started with the packaged flotillactl, runs on one machine.
                try bed.exec(2, "sh", "-c", "printf '[Service]\\nExecStart=/bin/sleep 1000000\\n' > /tmp/packaged.service")
                try bed.exec(2, "flotillactl", "start", "/tmp/packaged.service")
                let running = try Testbed.eventually(timeoutSeconds: 30) {
                    try (1...3).filter { machine in
                        (try? bed.execAllowingFailure(machine, "systemctl", "is-active", "packaged.service"))?.trimmedOutput == "active"
                    }.count == 1
                }
                #expect(running, "packaged.service is not active on exactly one machine")
            }
        }
    }
}

struct PackageFailure: Error, CustomStringConvertible {
    var description: String
}
