import ArgumentParser
import Daemon
import Foundation
#if canImport(Glibc)
import CSystemd
// Two malloc arenas, not one per thread: the daemon's threads each hold little, and glibc's
// default (8 per core) kept about 7 MB of idle arena memory resident (measured: 36.6 -> 29.7 MB
// RSS idle on a test-bed machine). Set before any thread starts.
_ = mallopt(M_ARENA_MAX, 2)
#endif
import Logging
import SystemdBus

/// flotillad: the peer daemon on every machine. Settings come from (lowest to highest)
/// defaults, /etc/flotilla/flotilla.conf (or --config / FLOTILLA_CONFIG), FLOTILLA_* environment
/// variables, then `--KEY=VALUE` flags; `DaemonConfiguration.resolve` reads all of them, so a key
/// means the same in every place. swift-argument-parser handles --config, --help and --version
/// and hands every other flag over as it came.
struct Flotillad: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "flotillad",
        abstract: "The Flotilla peer daemon: one per machine, run by systemd (Units/flotillad.service).",
        usage: "flotillad [--config PATH] [--KEY=VALUE ...]",
        discussion: """
        Every setting can be given in the configuration file (key=value), as an
        environment variable (FLOTILLA_PUBLIC_IP=10.0.0.1) or as a flag
        (--public-ip=10.0.0.1 or --public-ip 10.0.0.1; dashes and underscores are the
        same). Flags win over the environment, which wins over the file. Settings:

        \(DaemonConfiguration.settingsHelp())
        """,
        version: "flotillad \(FlotillaVersion.current)")

    @Option(name: .customLong("config"), help: ArgumentHelp(
        "The configuration file (default: $FLOTILLA_CONFIG, else /etc/flotilla/flotilla.conf, which may be absent).",
        valueName: "path"))
    var configPath: String?

    @Argument(parsing: .allUnrecognized, help: ArgumentHelp("Settings as --KEY=VALUE (the list above).", valueName: "--KEY=VALUE"))
    var settings: [String] = []

    func run() async throws {
        let environmentConfig = ProcessInfo.processInfo.environment["FLOTILLA_CONFIG"]
        let path = configPath ?? environmentConfig ?? "/etc/flotilla/flotilla.conf"
        let explicitConfig = configPath != nil || environmentConfig != nil
        let fileText: String?
        if FileManager.default.fileExists(atPath: path) {
            guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
                fail("cannot read configuration file \(path)", status: 1)
            }
            fileText = text
        } else if explicitConfig {
            fail("configuration file \(path) does not exist", status: 1)
        } else {
            fileText = nil
        }

        var environment = ProcessInfo.processInfo.environment
        environment.removeValue(forKey: "FLOTILLA_CONFIG")
        let configuration: DaemonConfiguration
        let warnings: [String]
        do {
            (configuration, warnings) = try DaemonConfiguration.resolve(fileText: fileText, environment: environment, arguments: settings)
        } catch {
            fail("\(error)", status: 2)
        }

        // Under systemd, log to the journal with priorities; otherwise to standard error.
        let level = Logger.Level(rawValue: configuration.logLevel) ?? .info
        if SystemdNotifier.isStandardErrorJournal {
            LoggingSystem.bootstrap { label in
                var handler = JournalLogHandler(label: label)
                handler.logLevel = level
                return handler
            }
        } else {
            LoggingSystem.bootstrap { label in
                var handler = StreamLogHandler.standardError(label: label)
                handler.logLevel = level
                return handler
            }
        }
        let logger = Logger(label: "flotillad")
        for warning in warnings { logger.warning("\(warning)") }

        do {
            try await Daemon.run(configuration: configuration, logger: logger)
        } catch {
            logger.critical("flotillad failed: \(error)")
            fail("\(error)", status: Daemon.exitStatus(for: error))
        }
    }

    func fail(_ message: String, status: Int32) -> Never {
        FileHandle.standardError.write(Data("flotillad: \(message)\n".utf8))
        // journald learns a message's unit (what `journalctl -u flotillad` selects on) by reading
        // the sender's /proc/PID/cgroup when it gets to the message. A process that exits at once
        // is often gone by then on a busy machine, and its last words, the reason it failed, are
        // kept but shown under no unit (seen in a test run at load 10: both lines missing from
        // `-u` for 30 s, present in the machine's whole journal). So, under the journal, stay a
        // moment before exiting; a failed start is no hurry.
        if ProcessInfo.processInfo.environment["JOURNAL_STREAM"] != nil { Thread.sleep(forTimeInterval: Self.journalGraceSeconds) }
        Foundation.exit(status)
    }

    static let journalGraceSeconds = 1.0
}

// Parsed here rather than through `main()`, whose async form needs a platform availability
// annotation that Linux has no use for. --help and --version arrive as errors that `exit(withError:)`
// prints and turns into status 0.
do {
    let command = try Flotillad.parse()
    try await command.run()
} catch {
    Flotillad.exit(withError: error)
}
