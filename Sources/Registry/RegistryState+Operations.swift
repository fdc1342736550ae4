import UnitFile

/// Each operation validates its whole batch before changing anything, so a rejected batch
/// leaves the state exactly as it was.
extension RegistryState {
    func checkBatch<Element>(_ batch: [Element], key: (Element) -> String) throws(RegistryRejection) {
        guard !batch.isEmpty else { throw .emptyBatch }
        guard batch.count <= limits.batchCountMax else {
            throw .batchTooLarge(count: batch.count, limit: limits.batchCountMax)
        }
        var seen = Set<String>()
        for element in batch where !seen.insert(key(element)).inserted {
            throw .duplicateInBatch(key(element))
        }
    }

    /// A validated file for `name`: canonical, hashed as claimed, with valid `[X-Fleet]` options
    /// for this name (templates are read per instance, when one is created).
    struct ValidatedFile {
        var bytes: [UInt8]
        var hash: UnitHash
        var options: FleetOptions
    }

    func validatedFile(_ submission: UnitSubmission) throws(RegistryRejection) -> ValidatedFile {
        let name = submission.name
        guard name.isSchedulableByFleet else { throw .notSchedulable(name.rawValue) }
        if name.form == .template, submission.targetState != .inactive {
            throw .templateCannotBeLaunched(name.rawValue)
        }
        let bytes: [UInt8]
        if let file = submission.file {
            bytes = file
        } else if name.form == .instance, let template = name.template, let stored = templates[template] {
            bytes = stored.file
        } else if name.form == .instance {
            throw .templateNotFound(name.rawValue)
        } else {
            throw .unitFileMissing(name.rawValue)
        }
        return try Self.validate(bytes, claimedHash: submission.file == nil ? nil : submission.hash,
                                 for: name, sizeMax: limits.unitFileSizeMax)
    }

    static func validate(_ bytes: [UInt8], claimedHash: UnitHash?, for name: UnitName, sizeMax: Int)
        throws(RegistryRejection) -> ValidatedFile
    {
        guard bytes.count <= sizeMax else {
            throw .unitFileTooLarge(name.rawValue, sizeBytes: bytes.count, limitBytes: sizeMax)
        }
        let hash = UnitHash(digestOf: bytes)
        if let claimedHash, claimedHash != hash { throw .hashMismatch(name.rawValue) }
        let unitFile: UnitFile
        do {
            unitFile = try UnitFile(parsing: bytes)
        } catch {
            throw .invalidUnitFile(name.rawValue, reason: String(error.description.prefix(512)))
        }
        // Only the canonical form is stored, so the hash identifies the content whatever the
        // client's formatting, and agents compare hashes, never text.
        guard unitFile.serializedBytes() == bytes else { throw .unitFileNotCanonical(name.rawValue) }
        guard name.form != .template else { return ValidatedFile(bytes: bytes, hash: hash, options: .unconstrained) }
        do {
            let options = try FleetOptions(unitFile: unitFile, unitName: name)
            return ValidatedFile(bytes: bytes, hash: hash, options: options)
        } catch {
            throw .invalidFleetOptions(name.rawValue, reason: String(error.description.prefix(512)))
        }
    }

    mutating func submit(_ submissions: [UnitSubmission]) throws(RegistryRejection) -> Int {
        try checkBatch(submissions) { $0.name.rawValue }
        var created: [(UnitSubmission, ValidatedFile)] = []
        for submission in submissions {
            let validated = try validatedFile(submission)
            if let existing = existingHash(of: submission.name) {
                guard existing == validated.hash else {
                    throw .unitExists(submission.name.rawValue, existingHash: existing.hex)
                }
                continue  // The same unit again: a no-op, as in fleet.
            }
            created.append((submission, validated))
        }
        guard units.count + templates.count + created.count <= limits.unitsMax else {
            throw .tooManyUnits(limit: limits.unitsMax)
        }
        for (submission, file) in created {
            store(submission.name, file, targetState: submission.targetState, machine: nil,
                  activeSince: submission.targetState == .inactive ? 0 : version)
        }
        return created.count
    }

    mutating func replaceFiles(_ submissions: [UnitSubmission]) throws(RegistryRejection) -> Int {
        try checkBatch(submissions) { $0.name.rawValue }
        var changed: [(UnitName, ValidatedFile)] = []
        for submission in submissions {
            guard let existing = existingHash(of: submission.name) else {
                throw .unitNotFound(submission.name.rawValue)
            }
            var withCurrentTarget = submission
            withCurrentTarget.targetState = units[submission.name]?.targetState ?? .inactive
            let validated = try validatedFile(withCurrentTarget)
            if validated.hash != existing { changed.append((submission.name, validated)) }
        }
        for (name, file) in changed {
            store(name, file, targetState: units[name]?.targetState ?? .inactive, machine: units[name]?.machine,
                  activeSince: units[name]?.activeSince ?? 0)
        }
        return changed.count
    }

    /// See `RegistryOperation.putUnit`. Everything that can refuse is checked before anything
    /// changes, so a refused put leaves the state as it was.
    mutating func put(_ submission: UnitSubmission, targetGiven: Bool) throws(RegistryRejection) -> Int {
        guard existingHash(of: submission.name) != nil else {
            var creation = submission
            if !targetGiven { creation.targetState = .inactive }
            return try submit([creation])
        }
        if targetGiven, templates[submission.name] != nil, submission.targetState != .inactive {
            throw .templateCannotBeLaunched(submission.name.rawValue)
        }
        var changed = 0
        if submission.file != nil { changed += try replaceFiles([submission]) }
        if targetGiven { changed += try setTarget([submission.name], submission.targetState) }
        return changed
    }

    mutating func setTarget(_ names: [UnitName], _ target: TargetState) throws(RegistryRejection) -> Int {
        try checkBatch(names) { $0.rawValue }
        for name in names {
            if templates[name] != nil, target != .inactive { throw .templateCannotBeLaunched(name.rawValue) }
            guard units[name] != nil || templates[name] != nil else { throw .unitNotFound(name.rawValue) }
        }
        var changedCount = 0
        for name in names where units[name] != nil && units[name]!.targetState != target {
            if target == .inactive {
                units[name]!.activeSince = 0
            } else if units[name]!.targetState == .inactive {
                units[name]!.activeSince = version
            }
            units[name]!.targetState = target
            changedCount += 1
        }
        return changedCount
    }

    mutating func destroy(_ names: [UnitName]) throws(RegistryRejection) -> Int {
        try checkBatch(names) { $0.rawValue }
        for name in names where units[name] == nil && templates[name] == nil {
            throw .unitNotFound(name.rawValue)
        }
        for name in names {
            units[name] = nil
            templates[name] = nil
        }
        return names.count
    }

    mutating func assign(_ assignments: [Assignment]) throws(RegistryRejection) -> Int {
        try checkBatch(assignments) { $0.unit.rawValue }
        for assignment in assignments {
            guard let unit = units[assignment.unit] else { throw .unitNotFound(assignment.unit.rawValue) }
            guard !unit.options.isGlobal else { throw .globalUnitCannotBeAssigned(unit.name.rawValue) }
            if machines[assignment.machine]?.isDrained == true { throw .machineDrained(assignment.machine.rawValue) }
        }
        var changedCount = 0
        for assignment in assignments where units[assignment.unit]!.machine != assignment.machine {
            units[assignment.unit]!.machine = assignment.machine
            changedCount += 1
        }
        return changedCount
    }

    mutating func unassign(_ names: [UnitName]) throws(RegistryRejection) -> Int {
        try checkBatch(names) { $0.rawValue }
        for name in names where units[name] == nil { throw .unitNotFound(name.rawValue) }
        var changedCount = 0
        for name in names where units[name]!.machine != nil {
            units[name]!.machine = nil
            changedCount += 1
        }
        return changedCount
    }

    mutating func setMetadata(_ machine: MachineID, _ entries: [MetadataEntry]) throws(RegistryRejection) -> Int {
        let sorted = try validatedMetadata(entries)
        guard machines[machine] != nil || machines.count < limits.machinesMax else {
            throw .tooManyMachines(limit: limits.machinesMax)
        }
        let record = machines[machine] ?? MachineRecord(id: machine, metadata: [], isDrained: false)
        guard record.metadata != sorted || machines[machine] == nil else { return 0 }
        machines[machine] = MachineRecord(id: machine, metadata: sorted, isDrained: record.isDrained, leaseEpoch: record.leaseEpoch)
        return 1
    }

    func validatedMetadata(_ entries: [MetadataEntry]) throws(RegistryRejection) -> [MetadataEntry] {
        guard entries.count <= limits.metadataEntriesMax else {
            throw .tooManyMetadataEntries(count: entries.count, limit: limits.metadataEntriesMax)
        }
        let sorted = Set(entries).sorted()
        for (offset, entry) in sorted.enumerated() {
            let keyBytes = entry.key.utf8, valueBytes = entry.value.utf8
            // "=", whitespace and control bytes could never be matched by an [X-Fleet] word.
            let isClean = { (bytes: String.UTF8View) in
                !bytes.isEmpty && bytes.count <= limits.metadataLengthMax
                    && bytes.allSatisfy { $0 > 0x20 && $0 != 0x7F && $0 != UInt8(ascii: "=") }
            }
            guard isClean(keyBytes), isClean(valueBytes) else {
                throw .invalidMetadata(key: String(entry.key.prefix(64)), value: String(entry.value.prefix(64)))
            }
            if offset > 0, sorted[offset - 1].key == entry.key {
                throw .invalidMetadata(key: entry.key, value: entry.value)  // one value per key
            }
        }
        return sorted
    }

    mutating func setDrained(_ machine: MachineID, _ isDrained: Bool) throws(RegistryRejection) -> Int {
        guard machines[machine] != nil || machines.count < limits.machinesMax else {
            throw .tooManyMachines(limit: limits.machinesMax)
        }
        let record = machines[machine] ?? MachineRecord(id: machine, metadata: [], isDrained: false)
        guard record.isDrained != isDrained || machines[machine] == nil else { return 0 }
        machines[machine] = MachineRecord(id: machine, metadata: record.metadata, isDrained: isDrained, leaseEpoch: record.leaseEpoch)
        return 1
    }

    /// Moves the machine to the next epoch, unplacing its units for a revocation; changed count:
    /// the machine plus each unit unplaced.
    mutating func endLeaseEpoch(_ machine: MachineID, epoch: UInt64, unplacing: Bool) throws(RegistryRejection) -> Int {
        let current = leaseEpoch(of: machine)
        guard current == epoch else {
            throw .staleLeaseEpoch(machine: machine.rawValue, epoch: epoch, currentEpoch: current)
        }
        // An epoch of UInt64.max can only come from a corrupt or hostile log: refuse it rather
        // than wrap to 0 and grant an old epoch again.
        guard epoch < UInt64.max else { throw .staleLeaseEpoch(machine: machine.rawValue, epoch: epoch, currentEpoch: current) }
        guard machines[machine] != nil || machines.count < limits.machinesMax else {
            throw .tooManyMachines(limit: limits.machinesMax)
        }
        let record = machines[machine] ?? MachineRecord(id: machine, metadata: [], isDrained: false)
        machines[machine] = MachineRecord(id: machine, metadata: record.metadata, isDrained: record.isDrained, leaseEpoch: epoch + 1)
        var unplaced = 0
        for (name, unit) in units where unplacing && unit.machine == machine {
            units[name]!.machine = nil
            unplaced += 1
        }
        return 1 + unplaced
    }

    func existingHash(of name: UnitName) -> UnitHash? {
        units[name]?.hash ?? templates[name]?.hash
    }

    mutating func store(
        _ name: UnitName, _ file: ValidatedFile, targetState: TargetState, machine: MachineID?, activeSince: UInt64 = 0
    ) {
        if name.form == .template {
            templates[name] = TemplateRecord(name: name, file: file.bytes, hash: file.hash)
        } else {
            // A unit that became global can no longer hold a placement.
            units[name] = UnitRecord(
                name: name, file: file.bytes, hash: file.hash, options: file.options,
                targetState: targetState, machine: file.options.isGlobal ? nil : machine,
                activeSince: targetState == .inactive ? 0 : activeSince)
        }
    }
}
