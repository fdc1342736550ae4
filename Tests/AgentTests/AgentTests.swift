import TestSupport
import Testing
import UnitFile
@testable import Agent

func name(_ text: String) -> UnitName { try! UnitName(text) }
let fileA = Array("[Service]\nExecStart=/bin/a\n".utf8)
let fileB = Array("[Service]\nExecStart=/bin/b\n".utf8)
let hashA = UnitHash(digestOf: fileA)
let hashB = UnitHash(digestOf: fileB)
let web = name("web.service")

func observed(_ load: LoadState, _ active: ActiveState, hash: UnitHash?) -> ObservedUnit {
    ObservedUnit(name: web, loadState: load, activeState: active, subState: "-", fileHash: hash)
}

@Suite(.onBackgroundThreads) struct AgentPlanTests {
    struct Case: Sendable, CustomTestStringConvertible {
        let label: String
        let desired: DesiredState?
        let observed: ObservedUnit?
        let expected: [UnitAction]
        var testDescription: String { label }
    }

    /// Target state × observed state, for one unit whose desired file is A.
    static let cases: [Case] = [
        Case(label: "launched, nothing on disk: write, start (systemd reads a new unit on its start)", desired: .launched,
             observed: nil, expected: [.writeFile(web, fileA), .start(web)]),
        Case(label: "loaded, nothing on disk: write and reload only", desired: .loaded, observed: nil,
             expected: [.writeFile(web, fileA), .reloadDaemon]),
        Case(label: "launched, running with the same file: re-adopted, no action", desired: .launched,
             observed: observed(.loaded, .active, hash: hashA), expected: []),
        Case(label: "launched, loaded but inactive: start", desired: .launched,
             observed: observed(.loaded, .inactive, hash: hashA), expected: [.start(web)]),
        Case(label: "launched, failed: left to systemd's Restart=", desired: .launched,
             observed: observed(.loaded, .failed, hash: hashA), expected: []),
        Case(label: "launched, file written but never loaded: start, which loads it", desired: .launched,
             observed: observed(.notFound, .inactive, hash: hashA), expected: [.start(web)]),
        Case(label: "launched, refused by systemd (error): no reload or start loop", desired: .launched,
             observed: observed(.error, .inactive, hash: hashA), expected: []),
        Case(label: "launched, masked by an operator: left alone", desired: .launched,
             observed: observed(.masked, .inactive, hash: hashA), expected: []),
        Case(label: "loaded, running: stop", desired: .loaded,
             observed: observed(.loaded, .active, hash: hashA), expected: [.stop(web)]),
        Case(label: "loaded, inactive: nothing", desired: .loaded,
             observed: observed(.loaded, .inactive, hash: hashA), expected: []),
        Case(label: "launched, running an old file: stop, write, reload, start", desired: .launched,
             observed: observed(.loaded, .active, hash: hashB),
             expected: [.stop(web), .writeFile(web, fileA), .reloadDaemon, .start(web)]),
        Case(label: "loaded, running an old file: stop, write, reload", desired: .loaded,
             observed: observed(.loaded, .activating, hash: hashB),
             expected: [.stop(web), .writeFile(web, fileA), .reloadDaemon]),
        Case(label: "not desired, running: stop, remove, reload", desired: nil,
             observed: observed(.loaded, .active, hash: hashA), expected: [.stop(web), .removeFile(web), .reloadDaemon]),
        Case(label: "not desired, stopped: remove, reload", desired: nil,
             observed: observed(.loaded, .inactive, hash: hashA), expected: [.removeFile(web), .reloadDaemon]),
        Case(label: "not desired, file gone but still running: stop", desired: nil,
             observed: observed(.loaded, .active, hash: nil), expected: [.stop(web)]),
        // The host's own unit of that name: never stopped, overwritten or started.
        Case(label: "launched, the host's own running unit: left alone", desired: .launched,
             observed: hostUnit(.active), expected: []),
        Case(label: "launched, the host's own stopped unit: not started", desired: .launched,
             observed: hostUnit(.inactive), expected: []),
        Case(label: "loaded, the host's own running unit: not stopped", desired: .loaded,
             observed: hostUnit(.active), expected: []),
    ]

    static func hostUnit(_ active: ActiveState) -> ObservedUnit {
        ObservedUnit(name: web, loadState: .loaded, activeState: active, subState: "running", fileHash: nil,
                     foreignFragmentPath: "/lib/systemd/system/web.service")
    }

    @Test(arguments: cases)
    func planForTargetAndObservedState(_ testCase: Case) throws {
        let desired = testCase.desired.map { [DesiredUnit(name: web, state: $0, hash: hashA, file: fileA)] } ?? []
        let plan = try AgentReconciler().plan(desired: desired, observed: testCase.observed.map { [$0] } ?? [])
        #expect(plan == testCase.expected)
    }

    @Test func manyUnitsShareOneReloadAndStopsComeBeforeStarts() throws {
        let old = name("old.service"), new = name("new.service"), changed = name("changed.service")
        let plan = try AgentReconciler().plan(
            desired: [DesiredUnit(name: new, state: .launched, hash: hashA, file: fileA),
                      DesiredUnit(name: changed, state: .launched, hash: hashA, file: fileA)],
            observed: [ObservedUnit(name: old, loadState: .loaded, activeState: .active, subState: "running", fileHash: hashA),
                       ObservedUnit(name: changed, loadState: .loaded, activeState: .active, subState: "running", fileHash: hashB)])
        #expect(plan == [.stop(changed), .stop(old), .removeFile(old), .writeFile(changed, fileA), .writeFile(new, fileA),
                         .reloadDaemon, .start(changed), .start(new)])
    }

    @Test func badInputIsATypedErrorNotACrash() {
        let unit = DesiredUnit(name: web, state: .launched, hash: hashA, file: fileA)
        #expect(throws: AgentError.duplicateUnit("web.service")) { try AgentReconciler().plan(desired: [unit, unit], observed: []) }
        #expect(throws: AgentError.desiredHashMismatch("web.service")) {
            try AgentReconciler().plan(desired: [DesiredUnit(name: web, state: .launched, hash: hashB, file: fileA)], observed: [])
        }
        #expect(throws: AgentError.tooManyUnits(count: 2, limit: 1)) {
            try AgentReconciler(unitsMax: 1).plan(desired: [], observed: [observed(.loaded, .active, hash: nil), observed(.loaded, .active, hash: nil)])
        }
        #expect(throws: AgentError.notAUnit("t@.service")) {
            try AgentReconciler().plan(desired: [DesiredUnit(name: name("t@.service"), state: .loaded, hash: hashA, file: fileA)], observed: [])
        }
    }

    @Test func systemdStateStringsMapToTheirCases() {
        #expect(LoadState(systemdValue: "not-found") == .notFound)
        #expect(ActiveState(systemdValue: "deactivating") == .deactivating)
        #expect(ActiveState(systemdValue: "maintenance") == .other("maintenance"))
    }
}

@Suite(.onBackgroundThreads) struct AgentReportTests {
    @Test func onlyChangesAreReportedAndVanishedUnitsAreReportedGone() throws {
        var agent = AgentReconciler()
        let running = observed(.loaded, .active, hash: hashA)
        #expect(try agent.report(observed: [running]).count == 1)
        #expect(try agent.report(observed: [running]).isEmpty)
        let stopped = observed(.loaded, .inactive, hash: hashA)
        #expect(try agent.report(observed: [stopped]).map(\.change)
            == [.observed(loadState: .loaded, activeState: .inactive, subState: "-", fileHash: hashA)])
        #expect(try agent.report(observed: []) == [UnitStateReport(name: web, change: .gone)])
        #expect(try agent.report(observed: []).isEmpty)
    }

    @Test func theHostsOwnUnitIsReportedRefusedWithItsPathNotItsState() throws {
        var agent = AgentReconciler()
        let host = AgentPlanTests.hostUnit(.active)
        #expect(try agent.report(observed: [host]) == [UnitStateReport(name: web, change: .refused(foreignFragmentPath: "/lib/systemd/system/web.service"))])
        var stopped = host
        stopped.activeState = .inactive
        #expect(try agent.report(observed: [stopped]).isEmpty, "the host unit's own state changes are not the cluster's")
        #expect(try agent.resync(observed: [host]).map(\.change) == [.refused(foreignFragmentPath: "/lib/systemd/system/web.service")])
    }

    @Test func aResyncAfterALeaderChangeReportsEveryObservedUnitThenOnlyChanges() throws {
        var agent = AgentReconciler()
        let running = observed(.loaded, .active, hash: hashA)
        _ = try agent.report(observed: [running])
        #expect(try agent.report(observed: [running]).isEmpty)
        // A new leader knows nothing: the resync repeats what the old one was told.
        let resync = try agent.resync(observed: [running])
        #expect(resync == [UnitStateReport(name: web, change: .observed(
            loadState: .loaded, activeState: .active, subState: "-", fileHash: hashA))])
        #expect(try agent.report(observed: [running]).isEmpty)
        #expect(throws: AgentError.self) { try agent.resync(observed: [running, running]) }
    }
}
