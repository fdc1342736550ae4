import FleetAPI
import Foundation
import HTTPAPI
import Testing

@Suite struct FlotillaRouteTests {
    @Test func clusterMachinesAndUnitFilesAnswerTheBackendsValues() async throws {
        try await ServerFixture.run { fixture in
            let cluster = try await fixture.request("GET", "/flotilla/v1/cluster")
            #expect(try decode(FlotillaClusterStatus.self, cluster).leaderMachineID == "m1")
            let machines = try await fixture.request("GET", "/flotilla/v1/machines")
            #expect(machines.text.hasPrefix(#"{"machines":[{"id":"m1","isDrained":false,"#))
            let files = try await fixture.request("GET", "/flotilla/v1/unit-files")
            #expect(files.text.hasPrefix(#"{"units":[{"desiredState":"launched","hash":"abc","isGlobal":false,"name":"web@1.service","#))
        }
    }

    @Test func drainAndUndrainAre204AndAnUnknownMachineIsTheBackends404() async throws {
        try await ServerFixture.run { fixture in
            #expect(try await fixture.request("POST", "/flotilla/v1/machines/m1/drain").status == 204)
            #expect(await fixture.backend.drained["m1"] == true)
            #expect(try await fixture.request("POST", "/flotilla/v1/machines/m1/undrain").status == 204)
            #expect(await fixture.backend.drained["m1"] == false)
            let unknown = try await fixture.request("POST", "/flotilla/v1/machines/m9/drain")
            #expect(unknown.status == 404)
            #expect(try errorBody(unknown).error.message == "machine m9 not found")
            #expect(try await fixture.request("GET", "/flotilla/v1/machines/m1/drain").header("Allow") == "POST")
        }
    }

    @Test func theKeyringIsListedAndChangedStrictly() async throws {
        try await ServerFixture.run { fixture in
            let listing = try await fixture.request("GET", "/flotilla/v1/keyring")
            #expect(listing.text == #"{"isReplicated":false,"keys":[{"fingerprint":"00112233aabbccdd","isPrimary":true}]}"#)
            let installed = try await fixture.request("POST", "/flotilla/v1/keyring", body: #"{"operation":"install","key":"a2V5"}"#,
                                                      headers: ["Content-Type: application/json"])
            #expect(installed.status == 204)
            #expect(await fixture.backend.keyringChanges == [FlotillaKeyringChange(operation: .install, key: "a2V5")])
            for bad in [#"{"operation":"rotate","key":"a2V5"}"#, #"{"operation":"use"}"#, #"{"operation":"use","key":""}"#,
                        #"{"operation":"use","key":"a2V5","extra":1}"#] {
                let refused = try await fixture.request("POST", "/flotilla/v1/keyring", body: bad, headers: ["Content-Type: application/json"])
                #expect(refused.status == 400, "\(bad)")
            }
            #expect(await fixture.backend.keyringChanges.count == 1)
        }
    }

    /// A TCP listener's callers are network callers: their token (either header) reaches the
    /// backend's decision, whose 401/403 come back in fleet's error shape before anything runs.
    @Test func aNetworkCallersTokenDecidesBeforeTheRouteRuns() async throws {
        try await ServerFixture.run { fixture in
            await fixture.backend.setRequireTokens(true)
            let unit = #"{"desiredState":"launched","options":[{"section":"Service","name":"ExecStart","value":"/bin/true"}]}"#
            let anonymous = try await fixture.request("PUT", "/fleet/v1/units/a.service", body: unit, headers: ["Content-Type: application/json"])
            #expect(anonymous.status == 401)
            #expect(try errorBody(anonymous).error.code == 401)
            let wrong = try await fixture.request("PUT", "/fleet/v1/units/a.service", body: unit,
                                                  headers: ["Content-Type: application/json", "X-Flotilla-Token: bad"])
            #expect(wrong.status == 403)
            #expect(try errorBody(wrong).error.message == "token may not write unit a.service")
            #expect(await fixture.backend.lastPut == nil, "refused before the backend ran the request")
            let bearer = try await fixture.request("PUT", "/fleet/v1/units/a.service", body: unit,
                                                   headers: ["Content-Type: application/json", "Authorization: Bearer good"])
            #expect(bearer.status == 201)
            let decisions = await fixture.backend.authorizations
            #expect(decisions.map(\.access) == [.writeUnit("a.service"), .writeUnit("a.service"), .writeUnit("a.service")])
            #expect(decisions.map(\.caller.kind) == [.network, .network, .network])
            #expect(decisions.map(\.caller.token) == [nil, "bad", "good"])
            // The unix socket is the management identity: a token there is not even read.
            let connection = try await fixture.connectUnix()
            let local = try await connection.request("GET", "/fleet/v1/units", headers: ["X-Flotilla-Token: bad"])
            await connection.close()
            #expect(local.status == 200)
            #expect(await fixture.backend.authorizations.last?.caller == APICaller(kind: .socket, machineID: "local"))
        }
    }

    @Test func aclTokensAreCreatedWithValidPoliciesOnly() async throws {
        try await ServerFixture.run { fixture in
            let created = try await fixture.request("POST", "/flotilla/v1/acl/tokens", body: #"{"name":"ci","policies":["read","units:web-*"]}"#)
            #expect(created.status == 200 && created.text.contains(#""secretID":"\#(TestBackend.createdSecret)""#), "\(created.text)")
            for bad in [#"{"name":"x","policies":["write"]}"#, #"{"name":"x","policies":[]}"#, #"{"name":"x","policies":["read"],"ttl":1}"#] {
                #expect(try await fixture.request("POST", "/flotilla/v1/acl/tokens", body: bad).status == 400, "\(bad)")
            }
            #expect(await fixture.backend.createdTokens == [FlotillaACLTokenRequest(name: "ci", policies: ["read", "units:web-*"])])
            #expect(try await fixture.request("DELETE", "/flotilla/v1/acl/tokens/a9").status == 404)
            #expect(try await fixture.request("DELETE", "/flotilla/v1/acl/tokens/\(TestBackend.createdAccessor)").status == 204)
            #expect(try await fixture.request("GET", "/flotilla/v1/acl/tokens").text == #"{"tokens":[{"accessorID":"\#(TestBackend.bootstrapAccessor)","name":"bootstrap","policies":["management"]}]}"#)
            #expect(await fixture.backend.authorizations.map(\.access).contains(.manage))
        }
    }

    @Test func watchPassesIndexAndCapsTheWait() async throws {
        try await ServerFixture.run(configuration: HTTPAPIConfiguration(longPollWaitMillisecondsMax: 60_000)) { fixture in
            let page = try await fixture.request("GET", "/flotilla/v1/watch?afterIndex=41&waitMilliseconds=120000")
            #expect(page.status == 200)
            #expect(try decode(FlotillaEventPage.self, page).lastIndex == 42)
            #expect(await fixture.backend.lastWaitMilliseconds == 60_000)
            _ = try await fixture.request("GET", "/flotilla/v1/watch?afterIndex=0&waitMilliseconds=250")
            #expect(await fixture.backend.lastWaitMilliseconds == 250)
        }
    }

    @Test(arguments: [
        "/flotilla/v1/watch?afterIndex=abc", "/flotilla/v1/watch?afterIndex=-1", "/flotilla/v1/watch?waitMilliseconds=1.5",
        "/flotilla/v1/watch?afterIndex=99999999999999999999999", "/flotilla/v1/units/a.service/journal?lines=x",
        "/flotilla/v1/units/a.service/journal?lines=10001", "/flotilla/v1/units/a.service/journal?follow=maybe",
        "/flotilla/v1/units/a.service/journal?output=pretty", "/fleet/v1/units?consistency=eventual",
        "/flotilla/v1/units/bad/status", "/flotilla/v1/watch?afterIndex=%zz",
        "/flotilla/v1/peer/schedule/m1?afterVersion=",
    ])
    func invalidQueryParametersAndNamesAre400(target: String) async throws {
        try await ServerFixture.run { fixture in
            let response = try await fixture.request("GET", target, over: target.contains("/peer/") ? .unix : .tcp)
            #expect(response.status == 400, "\(target): \(response.text)")
            #expect(try errorBody(response).error.code == 400)
        }
    }

    @Test func journalStatusAndScheduleAnswer() async throws {
        try await ServerFixture.run { fixture in
            let journal = try await fixture.request("GET", "/flotilla/v1/units/web%401.service/journal?lines=1")
            #expect(try decode(FlotillaJournal.self, journal) == FlotillaJournal(unit: "web@1.service", machineID: "m1", lines: ["line two"]))
            let status = try await fixture.request("GET", "/flotilla/v1/units/web@1.service/status")
            #expect(try decode(FlotillaUnitStatus.self, status).text.contains("Active: active"))
            let schedule = try await fixture.request("GET", "/flotilla/v1/peer/schedule/m2?afterVersion=7&waitMilliseconds=10", over: .unix)
            let decoded = try decode(MachineSchedule.self, schedule)
            #expect(decoded.machineID == "m2" && decoded.version == 8)
        }
    }

    @Test func aBackendFailureIsItsStatusInFleetsErrorShape() async throws {
        try await ServerFixture.run { fixture in
            let response = try await fixture.request("GET", "/flotilla/v1/units/failing.service/journal")
            #expect(response.status == 500)
            #expect(response.text == #"{"error":{"code":500,"message":"agent on m9 did not answer"}}"#)
            // The server is still there.
            #expect(try await fixture.request("GET", "/flotilla/v1/cluster").status == 200)
        }
    }

    @Test func stateReportsMustNameTheMachineOfTheURL() async throws {
        try await ServerFixture.run { fixture in
            let report = StateReport(machineID: "m2", isResync: true, states: [
                FleetUnitState(name: "a.service", hash: "h", machineID: "m2", systemdLoadState: "loaded",
                               systemdActiveState: "active", systemdSubState: "running"),
            ], gone: ["b.service"], scheduleVersion: 41)
            let body = String(decoding: try JSONEncoder().encode(report), as: UTF8.self)
            #expect(try await fixture.request("PUT", "/flotilla/v1/peer/states/m2", body: body, over: .unix).status == 204)
            #expect(await fixture.backend.reports == [report])
            let mismatch = try await fixture.request("PUT", "/flotilla/v1/peer/states/m3", body: body, over: .unix)
            #expect(mismatch.status == 400)
            #expect(await fixture.backend.reports.count == 1)
        }
    }

    @Test func metricsAreServedAsPrometheusText() async throws {
        try await ServerFixture.run { fixture in
            let response = try await fixture.request("GET", "/metrics")
            #expect(response.status == 200)
            #expect(response.header("Content-Type") == "text/plain; version=0.0.4; charset=utf-8")
            #expect(response.text == "# TYPE flotilla_raft_term gauge\nflotilla_raft_term 3\n")
        }
    }
}
