import Client
import FleetAPI
import Foundation
import HTTPAPI
import NIOCore
import Testing

@Suite struct FleetV1RouteTests {
    @Test func unitsArePagedByHundredsWithTokensAcross250Units() async throws {
        try await ServerFixture.run { fixture in
            await fixture.backend.setUnits((0..<250).map { unit(String(format: "u%03d.service", $0)) })
            var names: [String] = []
            var token: String?
            var pageSizes: [Int] = []
            repeat {
                let target = "/fleet/v1/units" + (token.map { "?nextPageToken=\($0)" } ?? "")
                let response = try await fixture.request("GET", target)
                #expect(response.status == 200)
                #expect(response.header("Content-Type") == "application/json")
                let page = try decode(FleetUnitPage.self, response)
                pageSizes.append(page.units.count)
                names += page.units.map(\.name)
                token = page.nextPageToken
            } while token != nil
            #expect(pageSizes == [100, 100, 50])
            #expect(names == (0..<250).map { String(format: "u%03d.service", $0) })

            // fleet's clients follow the tokens the same way: the Client module over the unix socket.
            let client = FlotillaClient(endpoint: .unix(path: fixture.socketPath), eventLoopGroup: ServerFixture.group)
            #expect(try await client.listUnits().count == 250)
            client.closeIdleConnections()
        }
    }

    @Test func aTokenThisServerDidNotIssueIs400() async throws {
        try await ServerFixture.run { fixture in
            for token in ["garbage!", "AAAA", "ZmxvdGlsbGEtcGFnZS12MTotMQ", "ZmxvdGlsbGEtcGFnZS12MTow"] {
                let response = try await fixture.request("GET", "/fleet/v1/units?nextPageToken=\(token)")
                #expect(response.status == 400, "token \(token)")
                #expect(try errorBody(response).error.message.contains("nextPageToken"))
            }
            let twice = try await fixture.request("GET", "/fleet/v1/machines?nextPageToken=a&nextPageToken=b")
            #expect(twice.status == 400)
        }
    }

    @Test func unitJSONIsFleetsFieldNamesByteForByte() async throws {
        try await ServerFixture.run { fixture in
            var placed = unit("web@1.service")
            placed.currentState = .launched
            placed.machineID = "m1"
            await fixture.backend.setUnits([placed, unit("a.service", desiredState: .inactive)])
            let one = try await fixture.request("GET", "/fleet/v1/units/web%401.service")
            #expect(one.status == 200)
            #expect(one.text == #"{"currentState":"launched","desiredState":"launched","machineID":"m1","name":"web@1.service","options":[{"name":"ExecStart","section":"Service","value":"/bin/true"}]}"#)
            let unencoded = try await fixture.request("GET", "/fleet/v1/units/web@1.service")
            #expect(unencoded.body == one.body)
            let page = try await fixture.request("GET", "/fleet/v1/units")
            #expect(page.text == #"{"units":[{"desiredState":"inactive","name":"a.service","options":[{"name":"ExecStart","section":"Service","value":"/bin/true"}]},"# + one.text + "]}")
        }
    }

    @Test func errorEntityIsFleetsShapeByteForByte() async throws {
        try await ServerFixture.run { fixture in
            let response = try await fixture.request("GET", "/fleet/v1/units/missing.service")
            #expect(response.status == 404)
            #expect(response.header("Content-Type") == "application/json")
            #expect(response.text == #"{"error":{"code":404,"message":"unit does not exist"}}"#)
        }
    }

    @Test func stateAndMachinesJSONAreFleetsFieldNamesByteForByte() async throws {
        try await ServerFixture.run { fixture in
            await fixture.backend.setStates([
                FleetUnitState(name: "a.service", hash: "f00", machineID: "m1", systemdLoadState: "loaded",
                               systemdActiveState: "active", systemdSubState: "running"),
                FleetUnitState(name: "b.service", hash: "ba5", machineID: "m2", systemdLoadState: "loaded",
                               systemdActiveState: "failed", systemdSubState: "failed"),
            ])
            await fixture.backend.setMachines([FleetMachine(id: "m1", primaryIP: "10.0.0.1", metadata: ["region": "eu", "disk": "ssd"])])
            let states = try await fixture.request("GET", "/fleet/v1/state?machineID=m2")
            #expect(states.text == #"{"states":[{"hash":"ba5","machineID":"m2","name":"b.service","systemdActiveState":"failed","systemdLoadState":"loaded","systemdSubState":"failed"}]}"#)
            let byUnit = try await fixture.request("GET", "/fleet/v1/state?unitName=a.service")
            #expect(try decode(FleetUnitStatePage.self, byUnit).states.map(\.name) == ["a.service"])
            let all = try await fixture.request("GET", "/fleet/v1/state")
            #expect(try decode(FleetUnitStatePage.self, all).states.count == 2)
            let machines = try await fixture.request("GET", "/fleet/v1/machines")
            #expect(machines.text == #"{"machines":[{"id":"m1","metadata":{"disk":"ssd","region":"eu"},"primaryIP":"10.0.0.1"}]}"#)
        }
    }

    @Test func putCreatesWith201ThenModifiesWith204() async throws {
        try await ServerFixture.run { fixture in
            let create = #"{"desiredState":"launched","options":[{"section":"Service","name":"ExecStart","value":"/bin/sleep 1000"}]}"#
            let created = try await fixture.request("PUT", "/fleet/v1/units/web%401.service", body: create)
            #expect(created.status == 201)
            #expect(created.body.isEmpty)
            let put = try #require(await fixture.backend.lastPut)
            #expect(put.name.rawValue == "web@1.service")
            #expect(put.unitFile?.fleetOptions.map(\.value) == ["/bin/sleep 1000"])
            let modified = try await fixture.request("PUT", "/fleet/v1/units/web@1.service",
                                                     body: #"{"name":"web@1.service","desiredState":"inactive"}"#)
            #expect(modified.status == 204)
            #expect(await fixture.backend.lastPut?.unitFile == nil)
            #expect(await fixture.backend.units["web@1.service"]?.desiredState == .inactive)
            // What a client read back may be sent back: the read-only fields are known and ignored.
            let roundTrip = #"{"name":"web@1.service","desiredState":"loaded","currentState":"launched","machineID":"m1"}"#
            #expect(try await fixture.request("PUT", "/fleet/v1/units/web@1.service", body: roundTrip).status == 204)
        }
    }

    /// fleetctl 1.0 (its HTTP client's CreateUnit, then SetUnitTargetState): a PUT with the
    /// name and options and no desiredState, as Go's encoder writes it, then a PUT with the name
    /// and the state. Both must succeed; the unit is inactive in between.
    @Test func fleetctlsCreateThenSetExchangeSucceeds() async throws {
        try await ServerFixture.run { fixture in
            let create = #"{"name":"hello.service","options":[{"name":"ExecStart","section":"Service","value":"/bin/sleep 1000"}]}"#
            let created = try await fixture.request("PUT", "/fleet/v1/units/hello.service", body: create)
            #expect(created.status == 201, "\(created.text)")
            #expect(await fixture.backend.units["hello.service"]?.desiredState == .inactive)
            let set = try await fixture.request("PUT", "/fleet/v1/units/hello.service", body: #"{"desiredState":"launched","name":"hello.service"}"#)
            #expect(set.status == 204, "\(set.text)")
            #expect(await fixture.backend.units["hello.service"]?.desiredState == .launched)
            // Sending the create again (fleetctl start of a unit it already submitted) with the
            // same options and no state changes nothing and is fleet's 409.
            let again = try await fixture.request("PUT", "/fleet/v1/units/hello.service", body: create)
            #expect(again.status == 409)
            #expect(try errorBody(again) == FleetErrorBody(code: 409, message: "must provide DesiredState to update existing unit"))
            #expect(await fixture.backend.units["hello.service"]?.desiredState == .launched)
        }
    }

    @Test func anExistingUnitNeedsADesiredStateUnlessItsFileChanges() async throws {
        try await ServerFixture.run { fixture in
            await fixture.backend.setUnits([unit("a.service", desiredState: .launched)])
            let bare = try await fixture.request("PUT", "/fleet/v1/units/a.service", body: #"{"name":"a.service"}"#)
            #expect(bare.status == 409)
            #expect(try errorBody(bare).error.message == "must provide DesiredState to update existing unit")
            // Same options (same hash) with a state: only the state changes.
            let same = #"{"desiredState":"loaded","options":[{"section":"Service","name":"ExecStart","value":"/bin/true"}]}"#
            #expect(try await fixture.request("PUT", "/fleet/v1/units/a.service", body: same).status == 204)
            #expect(await fixture.backend.units["a.service"]?.desiredState == .loaded)
            #expect(await fixture.backend.units["a.service"]?.options.map(\.value) == ["/bin/true"])
            // Other options and no state (Flotilla's --replace): the file changes, the state stays.
            let other = #"{"options":[{"section":"Service","name":"ExecStart","value":"/bin/false"}]}"#
            #expect(try await fixture.request("PUT", "/fleet/v1/units/a.service", body: other).status == 204)
            #expect(await fixture.backend.units["a.service"]?.options.map(\.value) == ["/bin/false"])
            #expect(await fixture.backend.units["a.service"]?.desiredState == .loaded)
        }
    }

    @Test func aTemplateIsNeverActivated() async throws {
        try await ServerFixture.run { fixture in
            let options = #""options":[{"section":"Service","name":"ExecStart","value":"/bin/true"}]"#
            let active = try await fixture.request("PUT", "/fleet/v1/units/web@.service", body: "{\(options),\"desiredState\":\"launched\"}")
            #expect(active.status == 400)
            #expect(try errorBody(active).error.message == #"cannot activate template "web@.service""#)
            #expect(try await fixture.request("PUT", "/fleet/v1/units/web@.service", body: "{\(options)}").status == 201)
            #expect(await fixture.backend.units["web@.service"]?.desiredState == .inactive)
            let load = try await fixture.request("PUT", "/fleet/v1/units/web@.service", body: #"{"desiredState":"loaded"}"#)
            #expect(load.status == 400)
            #expect(try await fixture.request("PUT", "/fleet/v1/units/web@.service", body: #"{"desiredState":"inactive"}"#).status == 204)
        }
    }

    @Test func putWithoutOptionsOfAnUnknownUnitIsTheBackends409() async throws {
        try await ServerFixture.run { fixture in
            for body in [#"{"desiredState":"launched"}"#, #"{"desiredState":"launched","options":[]}"#, #"{"desiredState":null}"#, "{}"] {
                let response = try await fixture.request("PUT", "/fleet/v1/units/new.service", body: body)
                #expect(response.status == 409)
                #expect(try errorBody(response) == FleetErrorBody(code: 409, message: "unit does not exist and options field empty"))
            }
        }
    }

    @Test(arguments: [
        ("a.service", #"{"desiredState":"running"}"#, "desiredState"),
        ("a.service", #"{"name":"b.service","desiredState":"launched"}"#, "differs"),
        ("a.txt", #"{"desiredState":"launched"}"#, "invalid unit name"),
        ("a%2Fb.service", #"{"desiredState":"launched"}"#, "invalid unit name"),
        ("a.service", #"{"desiredState":"launched","options":[{"section":"Service]\n[Unit","name":"X","value":"y"}]}"#, "invalid options"),
        ("a.service", #"{"desiredState":"launched","desiredstate":"launched"}"#, "unknown field \"desiredstate\""),
        ("a.service", #"{"desiredState":"launched","options":[{"section":"Service","name":"ExecStart","value":"/bin/true","extra":1}]}"#, "unknown field \"options[0].extra\""),
        ("a.service", #"{"desiredState":"launched""#, "not valid JSON"),
        ("a.service", #"["desiredState"]"#, "JSON object"),
        ("a.service", #"{"desiredState":"launched","options":"ExecStart=/bin/true"}"#, "options"),
        ("a.service", "", "empty"),
        // Names the host owns (HostUnitNames), whatever the body.
        ("dbus.service", #"{"desiredState":"launched","options":[{"section":"Service","name":"ExecStart","value":"/bin/true"}]}"#, "reserved for the host"),
        ("systemd-journald.service", #"{"desiredState":"launched"}"#, "reserved for the host"),
        ("flotillad.service", #"{"desiredState":"launched"}"#, "reserved for the host"),
        ("-.mount", #"{"desiredState":"launched"}"#, "a mount of / would cover"),
        ("etc-ssh.mount", #"{"desiredState":"launched"}"#, "a mount of /etc/ssh would cover"),
    ])
    func putRefusesInvalidRequestsWith400(name: String, body: String, messagePart: String) async throws {
        try await ServerFixture.run { fixture in
            let response = try await fixture.request("PUT", "/fleet/v1/units/\(name)", body: body)
            #expect(response.status == 400)
            let error = try errorBody(response)
            #expect(error.error.code == 400)
            #expect(error.error.message.contains(messagePart), "message: \(error.error.message)")
            #expect(await fixture.backend.lastPut == nil)
        }
    }

    @Test func putWithoutJSONContentTypeIs415AsInFleet() async throws {
        try await ServerFixture.run { fixture in
            let response = try await fixture.request("PUT", "/fleet/v1/units/a.service", body: #"{"desiredState":"launched"}"#,
                                                     headers: ["Content-Type: text/plain"])
            #expect(response.status == 415)
            #expect(try errorBody(response).error.code == 415)
        }
    }

    @Test func deleteIs204ThenUnknownIs404() async throws {
        try await ServerFixture.run { fixture in
            await fixture.backend.setUnits([unit("a.service")])
            #expect(try await fixture.request("DELETE", "/fleet/v1/units/a.service").status == 204)
            let again = try await fixture.request("DELETE", "/fleet/v1/units/a.service")
            #expect(again.status == 404)
            #expect(try errorBody(again).error.message == "unit does not exist")
        }
    }

    /// A write's idempotency key reaches the backend as `WriteID.current`; a malformed one is a
    /// 400 before anything runs, and a write without one runs without one (the daemon draws it).
    @Test func aWritesIdempotencyKeyReachesTheBackend() async throws {
        try await ServerFixture.run { fixture in
            await fixture.backend.setUnits([unit("a.service")])
            let key = "00000000000000ff"
            let put = try await fixture.request("PUT", "/fleet/v1/units/a.service", body: #"{"desiredState":"launched"}"#,
                                                headers: ["Content-Type: application/json", "X-Flotilla-Write-ID: \(key)"])
            #expect(put.status == 204)
            #expect(await fixture.backend.writeIDs["putUnit"] == WriteID(rawValue: 255))
            #expect(try await fixture.request("DELETE", "/fleet/v1/units/a.service", headers: ["X-Flotilla-Write-ID: 0123456789ABCDEF"]).status == 204)
            #expect(await fixture.backend.writeIDs["destroyUnit"] == WriteID(rawValue: 0x0123_4567_89AB_CDEF))

            for bad in ["0000000000000000", "ff", "0123456789abcdefg", "0x23456789abcdef", "0123456789abcde "] {
                let response = try await fixture.request("DELETE", "/fleet/v1/units/b.service", headers: ["X-Flotilla-Write-ID: \(bad)"])
                #expect(response.status == 400, "\(bad.debugDescription)")
                #expect(try errorBody(response).error.message.contains("X-Flotilla-Write-ID"))
            }
            let twice = try await fixture.request("DELETE", "/fleet/v1/units/b.service",
                                                  headers: ["X-Flotilla-Write-ID: 00000000000000ff", "X-Flotilla-Write-ID: 00000000000000fe"])
            #expect(twice.status == 400)

            await fixture.backend.setUnits([unit("c.service")])
            #expect(try await fixture.request("DELETE", "/fleet/v1/units/c.service").status == 204)
            #expect(await fixture.backend.writeIDs["destroyUnit"] == nil)
        }
    }

    @Test func patchMachinesPassesValidatedChangesInOrder() async throws {
        try await ServerFixture.run { fixture in
            let body = #"[{"op":"add","path":"/m1/metadata/region","value":"eu"},{"op":"remove","path":"/m2/metadata/disk"},{"op":"replace","path":"/m1/metadata/tier","value":"gold"}]"#
            let response = try await fixture.request("PATCH", "/fleet/v1/machines", body: body)
            #expect(response.status == 204)
            #expect(await fixture.backend.metadataChanges == [[
                MachineMetadataChange(machineID: "m1", key: "region", operation: .set("eu")),
                MachineMetadataChange(machineID: "m2", key: "disk", operation: .remove),
                MachineMetadataChange(machineID: "m1", key: "tier", operation: .set("gold")),
            ]])
        }
    }

    /// Keys in any case, as Go's encoding/json reads them, and the value wrapped as fleet's
    /// functional test (machines_test.go) sends it: `"Value":{"value":"bar"}`.
    @Test func patchMachinesReadsKeysInAnyCaseAndAWrappedValue() async throws {
        try await ServerFixture.run { fixture in
            let body = #"[{"op":"add","path":"/m1/metadata/foo","Value":{"value":"bar"}},"#
                + #"{"Op":"replace","Path":"/m2/metadata/ping","VALUE":"splat"},"#
                + #"{"op":"remove","path":"/m1/metadata/old","Value":{"value":""}}]"#
            let response = try await fixture.request("PATCH", "/fleet/v1/machines", body: body)
            #expect(response.status == 204, "\(response.text)")
            #expect(response.header("Content-Type") == "application/json", "fleet's 204s carried its content type")
            #expect(await fixture.backend.metadataChanges == [[
                MachineMetadataChange(machineID: "m1", key: "foo", operation: .set("bar")),
                MachineMetadataChange(machineID: "m2", key: "ping", operation: .set("splat")),
                MachineMetadataChange(machineID: "m1", key: "old", operation: .remove),
            ]])
            // A wrapped empty value is still no value for add.
            let empty = try await fixture.request("PATCH", "/fleet/v1/machines",
                                                  body: #"[{"op":"add","path":"/m1/metadata/foo","Value":{"value":""}}]"#)
            #expect(empty.status == 400)
            let unknown = try await fixture.request("PATCH", "/fleet/v1/machines",
                                                    body: #"[{"op":"add","path":"/m1/metadata/foo","value":"x","extra":1}]"#)
            #expect(unknown.status == 400)
        }
    }

    @Test(arguments: [
        (#"[{"op":"move","path":"/m1/metadata/a","value":"x"}]"#, "op"),
        (#"[{"op":"add","path":"/m1/meta/a","value":"x"}]"#, "path"),
        (#"[{"op":"add","path":"/m1/metadata/a b","value":"x"}]"#, "path"),
        (#"[{"op":"add","path":"m1/metadata/a","value":"x"}]"#, "path"),
        (#"[{"op":"add","path":"/m1/metadata/a"}]"#, "value"),
        (#"[{"op":"replace","path":"/m1/metadata/a","value":""}]"#, "value"),
        (#"[{"op":"add","path":"/m1/metadata/a","value":"x","from":"/m2"}]"#, "unknown field"),
        (#"{"op":"add"}"#, "JSON array"),
        (#"[{"op":"add","path":"/m1/metadata/a","value":3}]"#, "value"),
    ])
    func patchMachinesRefusesInvalidOperationsWith400(body: String, messagePart: String) async throws {
        try await ServerFixture.run { fixture in
            let response = try await fixture.request("PATCH", "/fleet/v1/machines", body: body)
            #expect(response.status == 400)
            #expect(try errorBody(response).error.message.contains(messagePart), "\(response.text)")
            #expect(await fixture.backend.metadataChanges.isEmpty)
        }
    }

    @Test func discoveryDocumentIsServedAtBothPaths() async throws {
        try await ServerFixture.run { fixture in
            for path in ["/fleet/v1/discovery", "/fleet/v1/discovery.json"] {
                let response = try await fixture.request("GET", path)
                #expect(response.status == 200)
                #expect(response.header("Content-Type") == "application/json")
                let document = try #require(try JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any])
                #expect(document["kind"] as? String == "discovery#restDescription")
                let resources = try #require(document["resources"] as? [String: Any])
                #expect(Set(resources.keys) == ["Units", "UnitState", "Machines"])
            }
        }
    }

    @Test func unknownPathIs404AndWrongMethodIs405WithAllow() async throws {
        try await ServerFixture.run { fixture in
            let unknown = try await fixture.request("GET", "/fleet/v2/units")
            #expect(unknown.status == 404)
            #expect(try errorBody(unknown).error.code == 404)
            let wrong = try await fixture.request("POST", "/fleet/v1/units/a.service", body: "{}")
            #expect(wrong.status == 405)
            #expect(wrong.header("Allow") == "GET, PUT, DELETE")
            #expect(try errorBody(wrong).error.code == 405)
            let machines = try await fixture.request("DELETE", "/fleet/v1/machines")
            #expect(machines.header("Allow") == "GET, PATCH")
            let badEscape = try await fixture.request("GET", "/fleet/v1/units/a%zz.service")
            #expect(badEscape.status == 400)
        }
    }
}
