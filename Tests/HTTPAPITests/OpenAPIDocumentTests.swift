import FleetAPI
import Foundation
import NIOHTTP1
import Testing
import TestSupport

@testable import HTTPAPI

/// Sources/HTTPAPI/openapi.json against the server: it describes every route and no other, it
/// is what the server serves, and every answer the real handler and encoders give (successes
/// and errors, over a real socket) has a documented status, media type and body schema.
@Suite struct OpenAPIDocumentTests {
    static let fileBytes: [UInt8] = {
        let url = Testbed.repositoryRoot.appendingPathComponent("Sources/HTTPAPI/openapi.json")
        return Array((try? Data(contentsOf: url)) ?? Data())
    }()

    static let methods = ["get", "put", "post", "delete", "patch"]

    func document() throws -> JSONValue { try JSONValue.parse(Self.fileBytes) }

    /// (path template, lowercased method) -> operation object.
    func operations(_ document: JSONValue) -> [String: JSONValue] {
        var found: [String: JSONValue] = [:]
        for (path, item) in document["paths"]?.objectMembers ?? [:] {
            for method in Self.methods { if let operation = item[method] { found["\(method.uppercased()) \(path)"] = operation } }
        }
        return found
    }

    @Test func theDocumentIsOpenAPI31WithUniqueOperationIDs() throws {
        let document = try document()
        #expect(document["openapi"]?.string == "3.1.0")
        let ids = operations(document).values.compactMap { $0["operationId"]?.string }
        #expect(ids.count == operations(document).count, "every operation has an operationId")
        #expect(Set(ids).count == ids.count, "operationIds are unique: \(ids.sorted())")
    }

    /// Both ways: each route of the router is documented with its methods, and each documented
    /// operation is a route, under the operationId of the route it reaches.
    @Test func everyRouteIsDocumentedAndNothingElse() throws {
        let document = try document()
        let documented = operations(document)
        var served: Set<String> = []
        for (path, methods) in Router.pathTemplates {
            for method in methods { served.insert("\(method.rawValue) \(path)") }
        }
        #expect(Set(documented.keys) == served, "only documented: \(Set(documented.keys).subtracting(served).sorted()); only served: \(served.subtracting(documented.keys).sorted())")
        for (key, operation) in documented {
            let parts = key.split(separator: " ", maxSplits: 1).map(String.init)
            // Fill each {parameter} with a value and ask the router which route that is.
            let concrete = parts[1].replacingOccurrences(of: #"\{[A-Za-z]+\}"#, with: "x.service", options: .regularExpression)
            guard case .route(let route) = Router.match(method: HTTPMethod(rawValue: parts[0]), path: concrete) else {
                Issue.record("\(key) does not reach a route")
                continue
            }
            let caseName = String(String(describing: route).prefix { $0 != "(" })
            let expected = parts[1] == "/fleet/v1/discovery.json" ? "discoveryJSON" : caseName
            #expect(operation["operationId"]?.string == expected, "\(key)")
            // Every path parameter of the template is declared.
            let declared = Set((operation["parameters"]?.arrayElements ?? []).compactMap { parameter -> String? in
                parameter["in"]?.string == "path" ? parameter["name"]?.string : nil
            })
            let inTemplate = Set(parts[1].split(separator: "/").filter { $0.hasPrefix("{") }.map { String($0.dropFirst().dropLast()) })
            #expect(declared == inTemplate, "\(key): declared \(declared), template \(inTemplate)")
        }
    }

    @Test func everySchemaReferenceResolves() throws {
        let document = try document()
        let text = String(decoding: Self.fileBytes, as: UTF8.self)
        let references = Set(text.matches(of: /"\$ref": "([^"]+)"/).map { String($0.1) })
        #expect(!references.isEmpty)
        for reference in references {
            let parts = reference.split(separator: "/").dropFirst().map(String.init)
            var node: JSONValue? = document
            for part in parts { node = node?[part] }
            #expect(reference.hasPrefix("#/") && node != nil, "\(reference) resolves")
        }
    }

    /// One request to send and the status its answer must have (its operation is found by
    /// path and method). Each status is one the handler really gives for it.
    struct Exchange: Sendable, CustomStringConvertible {
        var method: String
        var target: String
        var body: String? = nil
        var headers: [String] = []
        var over: ServerFixture.Listener = .tcp
        var status: Int
        var description: String { "\(method) \(target) -> \(status)" }
    }

    static let putBody = #"{"desiredState":"launched","options":[{"section":"Service","name":"ExecStart","value":"/bin/true"}]}"#

    static let exchanges: [Exchange] = [
        Exchange(method: "GET", target: "/fleet/v1/units", status: 200),
        Exchange(method: "GET", target: "/fleet/v1/units?nextPageToken=%%", status: 400),
        Exchange(method: "GET", target: "/fleet/v1/units/a.service", status: 200),
        Exchange(method: "GET", target: "/fleet/v1/units/missing.service", status: 404),
        Exchange(method: "GET", target: "/fleet/v1/units/not%20a%20unit", status: 400),
        Exchange(method: "PUT", target: "/fleet/v1/units/new.service", body: putBody, status: 201),
        Exchange(method: "PUT", target: "/fleet/v1/units/a.service", body: #"{"desiredState":"loaded"}"#, status: 204),
        Exchange(method: "PUT", target: "/fleet/v1/units/b.service", body: "{", status: 400),
        Exchange(method: "PUT", target: "/fleet/v1/units/b.service", body: putBody, headers: ["Content-Type: text/plain"], status: 415),
        Exchange(method: "PUT", target: "/fleet/v1/units/fresh.service", body: #"{"desiredState":"launched"}"#, status: 409),
        Exchange(method: "DELETE", target: "/fleet/v1/units/a.service", status: 204),
        Exchange(method: "DELETE", target: "/fleet/v1/units/missing.service", status: 404),
        Exchange(method: "GET", target: "/fleet/v1/state", status: 200),
        Exchange(method: "GET", target: "/fleet/v1/state?unitName=a.service&machineID=m1", status: 200),
        Exchange(method: "GET", target: "/fleet/v1/machines", status: 200),
        Exchange(method: "PATCH", target: "/fleet/v1/machines", body: #"[{"op":"add","path":"/m1/metadata/region","value":"eu"}]"#, status: 204),
        Exchange(method: "PATCH", target: "/fleet/v1/machines", body: #"[{"op":"jump","path":"/m1/metadata/region"}]"#, status: 400),
        Exchange(method: "GET", target: "/fleet/v1/discovery", status: 200),
        Exchange(method: "GET", target: "/fleet/v1/discovery", headers: ["X-Padding: " + String(repeating: "p", count: 70_000)], status: 431),
        Exchange(method: "GET", target: "/fleet/v1/discovery.json", status: 200),
        Exchange(method: "GET", target: "/flotilla/v1/openapi.json", status: 200),
        Exchange(method: "GET", target: "/flotilla/v1/cluster", status: 200),
        Exchange(method: "GET", target: "/flotilla/v1/cluster?consistency=eventual", status: 400),
        Exchange(method: "GET", target: "/flotilla/v1/machines", status: 200),
        Exchange(method: "POST", target: "/flotilla/v1/machines/m1/drain", status: 204),
        Exchange(method: "POST", target: "/flotilla/v1/machines/m1/undrain", status: 204),
        Exchange(method: "POST", target: "/flotilla/v1/machines/nobody/drain", status: 404),
        Exchange(method: "POST", target: "/flotilla/v1/machines/nobody/undrain", status: 404),
        Exchange(method: "GET", target: "/flotilla/v1/unit-files", status: 200),
        Exchange(method: "GET", target: "/flotilla/v1/watch?afterIndex=4&waitMilliseconds=0", status: 200),
        Exchange(method: "GET", target: "/flotilla/v1/watch?afterIndex=-1", status: 400),
        Exchange(method: "GET", target: "/flotilla/v1/units/web@1.service/journal?lines=5", status: 200),
        Exchange(method: "GET", target: "/flotilla/v1/units/missing.service/journal", status: 404),
        Exchange(method: "GET", target: "/flotilla/v1/units/failing.service/journal", status: 500),
        Exchange(method: "GET", target: "/flotilla/v1/units/web@1.service/status", status: 200),
        Exchange(method: "POST", target: "/flotilla/v1/acl/bootstrap", status: 200),
        Exchange(method: "GET", target: "/flotilla/v1/acl/tokens", status: 200),
        Exchange(method: "POST", target: "/flotilla/v1/acl/tokens", body: #"{"name":"reader","policies":["read"]}"#, status: 200),
        Exchange(method: "POST", target: "/flotilla/v1/acl/tokens", body: #"{"name":"reader","policies":[]}"#, status: 400),
        Exchange(method: "DELETE", target: "/flotilla/v1/acl/tokens/\(TestBackend.createdAccessor)", status: 204),
        Exchange(method: "DELETE", target: "/flotilla/v1/acl/tokens/zz", status: 404),
        Exchange(method: "POST", target: "/flotilla/v1/acl/authorize", body: #"{"access":"write","unit":"a.service"}"#, status: 204),
        Exchange(method: "POST", target: "/flotilla/v1/acl/authorize", body: #"{"access":"fly"}"#, status: 400),
        Exchange(method: "GET", target: "/flotilla/v1/keyring", status: 200),
        Exchange(method: "POST", target: "/flotilla/v1/keyring", body: #"{"operation":"use","key":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}"#, status: 204),
        Exchange(method: "POST", target: "/flotilla/v1/keyring", body: #"{"operation":"shout","key":"k"}"#, status: 400),
        Exchange(method: "GET", target: "/metrics", status: 200),
        // The peer routes: the unix socket serves them, api_listen (a network caller) refuses.
        Exchange(method: "GET", target: "/flotilla/v1/peer/schedule/m2?afterVersion=1&waitMilliseconds=0", over: .unix, status: 200),
        Exchange(method: "GET", target: "/flotilla/v1/peer/schedule/m2", status: 403),
        Exchange(method: "PUT", target: "/flotilla/v1/peer/states/m2", body: #"{"machineID":"m2","isResync":true,"states":[],"gone":[]}"#, over: .unix, status: 204),
        Exchange(method: "PUT", target: "/flotilla/v1/peer/states/m3", body: #"{"machineID":"m2","isResync":true,"states":[],"gone":[]}"#, over: .unix, status: 400),
        Exchange(method: "POST", target: "/flotilla/v1/peer/lease/m2", body: #"{"machineID":"m2","epoch":3}"#, over: .unix, status: 200),
        Exchange(method: "POST", target: "/flotilla/v1/peer/lease/m2", body: #"{"machineID":"m2","epoch":3,"scheduleVersion":41}"#,
                 over: .unix, status: 200),
        Exchange(method: "POST", target: "/flotilla/v1/peer/lease/m2/release", body: #"{"machineID":"m2","epoch":3}"#, over: .unix, status: 204),
        Exchange(method: "GET", target: "/flotilla/v1/peer/lease-withholds", over: .unix, status: 200),
        Exchange(method: "GET", target: "/flotilla/v1/peer/lease-withholds", status: 403),
    ]

    /// Each answer's status is documented for its operation, with the media type the server
    /// sent, and a JSON body conforms to the schema documented for that status.
    @Test func everyAnswerOfTheServerIsDocumented() async throws {
        let document = try document()
        let validator = JSONSchemaValidator(document: document)
        let documented = operations(document)
        var operationsSeen: Set<String> = []
        try await ServerFixture.run { fixture in
            await fixture.backend.setUnits([unit("a.service")])
            await fixture.backend.setStates([FleetUnitState(name: "a.service", hash: "h", machineID: "m1", systemdLoadState: "loaded",
                                                            systemdActiveState: "active", systemdSubState: "running")])
            await fixture.backend.setMachines([FleetMachine(id: "m1", primaryIP: "10.0.0.1", metadata: ["region": "eu"])])
            for exchange in Self.exchanges {
                let response = try await fixture.request(exchange.method, exchange.target, body: exchange.body, headers: exchange.headers,
                                                         over: exchange.over)
                #expect(response.status == exchange.status, "\(exchange): \(response.text.prefix(300))")
                let path = String(exchange.target.prefix { $0 != "?" })
                guard let (key, operation) = documented.first(where: { Self.template($0.key, matches: exchange.method, path) }) else {
                    Issue.record("\(exchange): no documented operation")
                    continue
                }
                operationsSeen.insert(key)
                guard let answer = Self.resolved(operation["responses"]?[String(response.status)], in: document) else {
                    Issue.record("\(exchange): status \(response.status) is not documented for \(key)")
                    continue
                }
                let mediaType = response.header("Content-Type").map { String($0.prefix { $0 != ";" }) }
                guard let content = answer["content"]?.objectMembers, !content.isEmpty, !response.body.isEmpty else {
                    #expect(response.body.isEmpty, "\(exchange): a body the document does not describe")
                    continue
                }
                guard let mediaType, let entry = content.first(where: { $0.key.prefix { $0 != ";" } == mediaType })?.value else {
                    Issue.record("\(exchange): media type \(mediaType ?? "none") is not documented (\(content.keys.sorted()))")
                    continue
                }
                guard mediaType == "application/json", let schema = entry["schema"] else { continue }
                let violations = validator.violations(of: try JSONValue.parse(response.body), against: schema)
                #expect(violations.isEmpty, "\(exchange): \(violations.prefix(5)) in \(response.text.prefix(400))")
            }
        }
        #expect(operationsSeen == Set(documented.keys), "operations no exchange reached: \(Set(documented.keys).subtracting(operationsSeen).sorted())")
    }

    /// The document the server serves is the file, byte for byte.
    @Test func theServerServesTheFile() async throws {
        #expect(!Self.fileBytes.isEmpty)
        #expect(PackageResources.openapi_json == Self.fileBytes)
        try await ServerFixture.run { fixture in
            let response = try await fixture.request("GET", "/flotilla/v1/openapi.json")
            #expect(response.status == 200)
            #expect(response.header("Content-Type") == "application/json")
            #expect(response.body == Self.fileBytes)
        }
    }

    /// The validator itself: it must refuse what breaks a schema, or the checks above prove nothing.
    @Test func theValidatorRefusesWhatBreaksASchema() throws {
        let document = try document()
        let validator = JSONSchemaValidator(document: document)
        let error = JSONValue.object(["error": .object(["code": .number(404), "message": .string("unit does not exist")])])
        let schema = JSONValue.object(["$ref": .string("#/components/schemas/Error")])
        #expect(validator.violations(of: error, against: schema).isEmpty)
        let broken: [JSONValue] = [
            .object(["error": .object(["code": .string("404"), "message": .string("m")])]),
            .object(["error": .object(["message": .string("m")])]),
            .object(["error": .object(["code": .number(4.5), "message": .string("m")])]),
            .array([]),
        ]
        for value in broken { #expect(!validator.violations(of: value, against: schema).isEmpty, "\(value)") }
        #expect(!validator.violations(of: .string("x"), against: .object(["frobnicate": .bool(true)])).isEmpty,
                "an unknown keyword fails")
    }

    static func resolved(_ value: JSONValue?, in document: JSONValue) -> JSONValue? {
        guard let value else { return nil }
        guard let reference = value["$ref"]?.string else { return value }
        var node: JSONValue? = document
        for part in reference.split(separator: "/").dropFirst() { node = node?[String(part)] }
        return node
    }

    /// Whether "METHOD /a/{p}/b" is `method` on `path` (percent-encoded segments match `{p}`).
    static func template(_ key: String, matches method: String, _ path: String) -> Bool {
        let parts = key.split(separator: " ", maxSplits: 1)
        guard parts[0] == method else { return false }
        let pattern = parts[1].split(separator: "/", omittingEmptySubsequences: false)
        let segments = path.split(separator: "/", omittingEmptySubsequences: false)
        guard pattern.count == segments.count else { return false }
        return zip(pattern, segments).allSatisfy { $0.hasPrefix("{") ? !$1.isEmpty : $0 == $1 }
    }
}
