@testable import CLI
import Client
import Foundation
import HTTPAPI
import Logging
import NIOPosix
import Testing

/// flotillactl's commands run in-process (`Flotillactl.run(arguments:)`, output captured)
/// against HTTPAPI's real server on a temporary unix socket, backed by `InMemoryBackend`.
@Suite("flotillactl against HTTPAPI's server", .serialized)
struct CommandTests {
    struct Result {
        var status: Int32
        var output: String
        var error: String
    }

    final class Harness: Sendable {
        let socketPath = temporarySocketPath("cli")
        let directory: String
        let server: HTTPAPIServer

        init() async throws {
            directory = NSTemporaryDirectory() + "flotillactl-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            server = try await HTTPAPIServer.start(listeners: [.unix(path: socketPath)], backend: InMemoryBackend(),
                                                   eventLoopGroup: MultiThreadedEventLoopGroup.singleton,
                                                   logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }))
        }

        func write(_ name: String, _ text: String) throws {
            try text.write(toFile: directory + "/" + name, atomically: true, encoding: .utf8)
        }

        func run(_ arguments: String...) async -> Result {
            let console = Console(capturing: true)
            let status = await Console.$current.withValue(console) {
                await Flotillactl.run(arguments: ["--endpoint", "unix://\(socketPath)"] + arguments)
            }
            return Result(status: status, output: console.capturedOutput, error: console.capturedError)
        }

        func close() async {
            await server.shutdown()
            try? FileManager.default.removeItem(atPath: directory)
        }
    }

    @Test func startInstancesFromALocalTemplateThenListAndStop() async throws {
        let harness = try await Harness()
        try harness.write("web@.service", "[Unit]\nDescription=Web %i\n\n[Service]\nExecStart=/bin/sleep 1000\n")

        let start = await harness.run("start", harness.directory + "/web@{1..2}.service")
        #expect(start.status == 0, "\(start.error)")
        #expect(start.output == """
            Unit web@1.service inactive
            Unit web@2.service inactive
            Unit web@1.service launched on 01234567.../10.0.0.1
            Unit web@2.service launched on 01234567.../10.0.0.1

            """)

        let units = await harness.run("list-units")
        #expect(units.output == """
            UNIT\t\tMACHINE\t\t\tACTIVE\tSUB
            web@1.service\t01234567.../10.0.0.1\tactive\trunning
            web@2.service\t01234567.../10.0.0.1\tactive\trunning

            """)

        let files = await harness.run("list-unit-files", "--no-legend", "--fields", "unit,dstate,state,desc")
        #expect(files.output == "web@1.service\tlaunched\tlaunched\tWeb %i\nweb@2.service\tlaunched\tlaunched\tWeb %i\n")

        let stop = await harness.run("stop", "web@1")
        #expect(stop.status == 0)
        #expect(stop.output == "Unit web@1.service loaded on 01234567.../10.0.0.1\n")

        let cat = await harness.run("cat", "web@2.service")
        #expect(cat.output == "[Unit]\nDescription=Web %i\n\n[Service]\nExecStart=/bin/sleep 1000\n")

        let destroy = await harness.run("destroy", "web@1.service", "web@2.service", "never.service")
        #expect(destroy.status == 0)
        #expect(destroy.output == "Destroyed web@1.service\nDestroyed web@2.service\n")
        await harness.close()
    }

    @Test func submitReplaceAndNoBlock() async throws {
        let harness = try await Harness()
        let path = harness.directory + "/db.service"
        try harness.write("db.service", "[Service]\nExecStart=/bin/true\n")
        #expect(await harness.run("submit", path).output == "Unit db.service inactive\n")

        try harness.write("db.service", "[Service]\nExecStart=/bin/false\n")
        let differs = await harness.run("submit", path)
        #expect(differs.error.contains("WARNING: Unit db.service in registry differs from local unit file"))
        #expect(await harness.run("submit", "--replace", path).output == "Unit db.service replaced\n")
        #expect(await harness.run("cat", "db").output == "[Service]\nExecStart=/bin/false\n")

        let start = await harness.run("start", "--no-block", "db")
        #expect(start.output == "Triggered unit db.service start\n")
        let machines = await harness.run("list-machines", "-l", "--fields", "machine,ip,role,units")
        #expect(machines.output.contains("0123456789abcdef0123456789abcdef\t10.0.0.1\tvoter\t1\n"))
        await harness.close()
    }

    @Test func failuresExitOneWithAReason() async throws {
        let harness = try await Harness()
        let missing = await harness.run("start", "absent.service")
        #expect(missing.status == 1)
        #expect(missing.error.contains("unable to find Unit(absent.service)"))

        let badFields = await harness.run("list-units", "--fields", "unit,nope")
        #expect(badFields.status == 1)
        #expect(badFields.error.contains(#"Invalid key in output format: "nope""#))

        let stopMissing = await harness.run("stop", "ghost")
        #expect(stopMissing.status == 1)
        #expect(stopMissing.error.contains("Unit ghost.service not found in registry"))

        let usage = await harness.run("list-units", "--bogus")
        #expect(usage.status == 1)

        let console = Console(capturing: true)
        let unreachable = await Console.$current.withValue(console) {
            await Flotillactl.run(arguments: ["list-machines", "--endpoint", "unix:///nonexistent/flotilla.sock"])
        }
        #expect(unreachable == 1)
        #expect(console.capturedError.contains("cannot connect to flotillad at unix:///nonexistent/flotilla.sock"))
        #expect(console.capturedError.contains("is flotillad running?"))
        await harness.close()
    }

    @Test func journalStatusDrainAndWatch() async throws {
        let harness = try await Harness()
        try harness.write("a.service", "[Service]\nExecStart=/bin/true\n")
        _ = await harness.run("start", harness.directory + "/a.service")
        #expect(await harness.run("journal", "--lines", "2", "a").output == "line 2\nline 3\n")
        #expect(await harness.run("journal", "-f", "a").output == "line 1\nline 2\nline 3\n")
        #expect(await harness.run("journal", "--output", "json", "a").status == 0)
        #expect(await harness.run("journal", "--output", "bogus", "a").status == 1)
        #expect(await harness.run("status", "a").output == "● a.service\n   Active: active (running)\n")

        #expect(await harness.run("drain", "0123").output == "Machine 0123456789abcdef0123456789abcdef drained\n")
        let drained = await harness.run("list-machines", "--no-legend", "--fields", "machine,drained")
        #expect(drained.output == "01234567...\ttrue\nfedcba98...\tfalse\n")
        #expect(await harness.run("undrain", "0123456789abcdef0123456789abcdef").status == 0)

        let watch = await harness.run("watch", "--count", "2", "--wait-ms", "0")
        #expect(watch.output == "1\tmachine\t0123456789abcdef0123456789abcdef\tgone\n2\tunit\tweb.service\tdestroyed\n")
        await harness.close()
    }

    /// `keyring list/install/use/remove` against the API: a rotation, and the refusals reported.
    @Test func keyringCommandsRotateTheClustersKey() async throws {
        let harness = try await Harness()
        let newKey = "BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB="
        #expect(await harness.run("keyring", "list", "--no-legend").output == "AAAAAAAAAAAAAAAA\tyes\n")
        #expect(await harness.run("keyring", "install", newKey).output == "Installed the key on every machine's gossip keyring\n")
        #expect(await harness.run("keyring", "list").output == "FINGERPRINT\tPRIMARY\nAAAAAAAAAAAAAAAA\tyes\nBBBBBBBBBBBBBBBB\t-\n")
        let refused = await harness.run("keyring", "remove", "AAAAAAAAAAAAAAAA")
        #expect(refused.status == 1 && refused.error.contains("Error: keyring remove failed") && refused.error.contains("primary"), "\(refused)")
        #expect(await harness.run("keyring", "use", "BBBBBBBBBBBBBBBB").output == "Every machine now encrypts gossip with the key\n")
        #expect(await harness.run("keyring", "remove", "AAAAAAAAAAAAAAAA").status == 0)
        #expect(await harness.run("keyring", "list", "--no-legend").output == "BBBBBBBBBBBBBBBB\tyes\n")
        await harness.close()
    }

    @Test func aclCommandsBootstrapCreateListAndDeleteTokens() async throws {
        let harness = try await Harness()
        let bootstrap = await harness.run("acl", "bootstrap")
        #expect(bootstrap.output == "AccessorID:\taccessor1\nSecretID:\tsecret1\nName:\t\tbootstrap management token\nPolicies:\tmanagement\n")
        let again = await harness.run("acl", "bootstrap")
        #expect(again.status == 1 && again.error.contains("already bootstrapped"), "\(again)")
        let created = await harness.run("acl", "token", "create", "--name", "web deployers", "--policy", "read", "--policy", "units:web-*")
        #expect(created.output.contains("SecretID:\tsecret2") && created.output.contains("Policies:\tread, units:web-*"), "\(created)")
        #expect(await harness.run("acl", "token", "list", "--no-legend").output
                == "accessor1\tbootstrap management token\tmanagement\naccessor2\tweb deployers\tread,units:web-*\n")
        #expect(await harness.run("acl", "token", "delete", "accessor2").output == "Deleted token accessor2\n")
        #expect(await harness.run("acl", "token", "delete", "accessor2").status == 1)
        await harness.close()
    }

    /// `keyring generate` needs no daemon and prints a keyring file: a comment, then one base64
    /// key of 32 bytes, a new one each time (flotillad's own parser reads it in the end-to-end
    /// tests, which make their clusters' keyrings with it).
    @Test func keyringGeneratePrintsAFreshKeyEachTime() async throws {
        var keys: [String] = []
        for _ in 0..<2 {
            let console = Console(capturing: true)
            let status = await Console.$current.withValue(console) { await Flotillactl.run(arguments: ["keyring", "generate"]) }
            #expect(status == 0, "\(console.capturedError)")
            let lines = console.capturedOutput.split(separator: "\n").map(String.init)
            #expect(lines.count == 2 && lines[0].hasPrefix("#"), "\(lines)")
            let key = try #require(lines.last)
            #expect(Data(base64Encoded: key)?.count == 32, "\(key)")
            keys.append(key)
        }
        #expect(keys[0] != keys[1])
    }
}
