import Agent
import Foundation
import Logging
import Registry
import Storage
import Locking

/// The shell around this peer's `LeaseLedger`: answers renewals under a lock, ticks it, and makes
/// its withholds durable (`DurableFile`, fsync before rename) before they count: the ledger
/// reports only what `madeDurable` confirmed, so a withhold the leader counted survives a crash
/// of this peer (the Lease article says why that matters).
///
/// File: `<data_dir>/lease-withholds`, one `machineID epoch` line per withheld machine, sorted.
final class LeaseLedgerStore: Sendable {
    let path: String
    private let ledger: Locked<LeaseLedger>
    /// One write at a time; a tick that finds one running leaves its change for the next tick.
    private let isWriting = Locked(false)
    /// The machines with units placed, with their epochs, as of one registry version: the
    /// registry changes far less often than the ledger ticks (10 times a second), and walking
    /// every unit each tick cost a debug build a tenth of a core with 3,000 units.
    private let placedByVersion = Locked<(version: UInt64, placed: [MachineID: UInt64])?>(nil)
    private let logger: Logger

    /// Withholds are one short line each; the registry holds at most this many machines.
    static let withholdsMax = RegistryLimits.standard.machinesMax
    static let lineBytesMax = MachineID.lengthMax + 24

    init(timing: LeaseTiming, dataDirectory: String, logger: Logger) throws {
        path = dataDirectory + "/lease-withholds"
        self.logger = logger
        let durable = try Self.readWithholds(path: path)
        ledger = Locked(LeaseLedger(timing: timing, durableWithholds: durable, machinesMax: Self.withholdsMax))
        if !durable.isEmpty {
            logger.notice("lease withholds read back", metadata: ["count": "\(durable.count)", "file": "\(path)"])
        }
    }

    func renew(machine: MachineID, epoch: UInt64, registryEpoch: UInt64, voters: [VoterName], holder: String?,
               nowMilliseconds: Int64) -> LeaseAnswer {
        ledger.withLock {
            $0.renew(machine: machine, epoch: epoch, registryEpoch: registryEpoch, voters: voters, holder: holder,
                     nowMilliseconds: nowMilliseconds)
        }
    }

    func setVoter(_ isVoter: Bool, nowMilliseconds: Int64) {
        ledger.withLock { $0.setVoter(isVoter, nowMilliseconds: nowMilliseconds) }
    }

    var isVoter: Bool { ledger.withLock { $0.voterSinceMilliseconds != nil } }

    func isRenewing(_ machine: MachineID, epoch: UInt64, nowMilliseconds: Int64) -> Bool {
        ledger.withLock { $0.isRenewing(machine, epoch: epoch, nowMilliseconds: nowMilliseconds) }
    }

    var durableWithholds: [MachineID: UInt64] { ledger.withLock { $0.durable } }

    /// Ticks the ledger against the applied registry and writes a changed set of withholds.
    func tick(nowMilliseconds: Int64, hasLeader: Bool, registry: RegistryState) {
        let placed = placedMachines(registry)
        guard let toWrite = ledger.withLock({
            $0.tick(nowMilliseconds: nowMilliseconds, hasLeader: hasLeader, placed: placed, epochOf: registry.leaseEpoch(of:))
        })
        else { return }
        guard isWriting.withLock({ writing in
            defer { writing = true }
            return !writing
        }) else { return }
        defer { isWriting.withLock { $0 = false } }
        do {
            try DurableFile.write(Self.encode(toWrite), to: path)
            ledger.withLock { $0.madeDurable(toWrite) }
            logger.notice("lease withheld: these machines renewed nothing for the expiry time",
                          metadata: ["withheld": "\(toWrite.keys.sorted().map { "\($0)@\(toWrite[$0]!)" })"])
        } catch {
            // Not durable, so not reported: the leader cannot count this voter for these
            // machines until a later tick writes them. Refusing their renewals stays safe.
            logger.error("writing the lease withholds failed; they are not reported until written",
                         metadata: ["file": "\(path)", "error": "\(error)"])
        }
    }

    private func placedMachines(_ registry: RegistryState) -> [MachineID: UInt64] {
        if let cached = placedByVersion.withLock({ $0 }), cached.version == registry.version { return cached.placed }
        var placed: [MachineID: UInt64] = [:]
        for unit in registry.units.values {
            if let machine = unit.machine, placed[machine] == nil { placed[machine] = registry.leaseEpoch(of: machine) }
        }
        placedByVersion.withLock { $0 = (registry.version, placed) }
        return placed
    }

    static func encode(_ withholds: [MachineID: UInt64]) -> [UInt8] {
        Array(withholds.keys.sorted().map { "\($0.rawValue) \(withholds[$0]!)\n" }.joined().utf8)
    }

    /// A missing file is no withholds; a corrupt one is an error naming the file: starting with
    /// withholds forgotten could let a machine whose units were moved renew its old lease.
    static func readWithholds(path: String) throws -> [MachineID: UInt64] {
        guard let payload = try DurableFile.read(path, payloadBytesMax: withholdsMax * lineBytesMax) else { return [:] }
        var withholds: [MachineID: UInt64] = [:]
        for line in payload.split(separator: UInt8(ascii: "\n")) {
            let fields = line.split(separator: UInt8(ascii: " "))
            guard fields.count == 2, let machine = try? MachineID(String(decoding: fields[0], as: UTF8.self)),
                  let epoch = UInt64(String(decoding: fields[1], as: UTF8.self)), withholds[machine] == nil
            else {
                throw ConfigurationError("\(path) holds a line that is not `machineID epoch`: \(String(decoding: line.prefix(80), as: UTF8.self).debugDescription); the file was written whole and checksummed, so the disk is failing")
            }
            withholds[machine] = epoch
        }
        return withholds
    }
}
