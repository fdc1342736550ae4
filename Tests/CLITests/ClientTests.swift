import TestSupport
import Client
import FleetAPI
import Foundation
import NIOCore
import Testing

/// A fresh socket path per test, short enough for sun_path (108 bytes).
func temporarySocketPath(_ tag: String) -> String {
    "/tmp/flotilla-cli-\(tag)-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).sock"
}

@Suite("APIEndpoint parsing", .onBackgroundThreads)
struct APIEndpointTests {
    @Test func unixForms() throws {
        #expect(try APIEndpoint(parsing: "unix:///var/run/flotilla.sock") == .unix(path: "/var/run/flotilla.sock"))
        #expect(try APIEndpoint(parsing: "unix:/tmp/f.sock") == .unix(path: "/tmp/f.sock"))
        #expect(try APIEndpoint(parsing: "/tmp/f.sock") == .unix(path: "/tmp/f.sock"))
    }

    @Test func httpForms() throws {
        #expect(try APIEndpoint(parsing: "http://10.0.0.1:4002") == .tcp(host: "10.0.0.1", port: 4002))
        #expect(try APIEndpoint(parsing: "http://example.com") == .tcp(host: "example.com", port: 80))
        #expect(try APIEndpoint(parsing: "http://[::1]:4002/") == .tcp(host: "::1", port: 4002))
        #expect(APIEndpoint.tcp(host: "::1", port: 4002).description == "http://[::1]:4002")
    }

    @Test func httpsForms() throws {
        #expect(try APIEndpoint(parsing: "https://10.0.0.1:4002") == .https(host: "10.0.0.1", port: 4002))
        #expect(try APIEndpoint(parsing: "https://flotilla.example.com") == .https(host: "flotilla.example.com", port: 443))
        #expect(try APIEndpoint(parsing: " https://[::1]:4002/ ") == .https(host: "::1", port: 4002))
        #expect(APIEndpoint.https(host: "::1", port: 4002).description == "https://[::1]:4002")
        #expect(APIEndpoint.https(host: "h", port: 443).description == "https://h:443")
    }

    @Test(arguments: ["", "unix://var/run/f.sock", "tcp://h:1", "http://h:0", "http://h:x", "http://:80", "http://h:1/v1",
                      "https://h:0", "https://", "https://h:1/v1", "https://[::1"])
    func refusedForms(_ text: String) {
        #expect(throws: ClientError.self) { try APIEndpoint(parsing: text) }
    }
}

@Suite("FlotillaClient over a unix socket (transport behaviours, against MiniHTTPServer)")
struct ClientTransportTests {
    @Test func listUnitsFollowsEveryPage() async throws {
        let server = try await MiniHTTPServer(socketPath: temporarySocketPath("pages")) { request in
            switch request.uri {
            case "/fleet/v1/units":
                return .json(#"{"units":[{"name":"a.service","options":[],"desiredState":"launched"}],"nextPageToken":"t 1"}"#)
            case "/fleet/v1/units?nextPageToken=t%201":
                return .json(#"{"units":[{"name":"b.service","options":[]}]}"#)
            default:
                return .json(#"{"error":{"code":404,"message":"no route"}}"#, status: 404)
            }
        }
        let client = FlotillaClient(endpoint: .unix(path: server.socketPath))
        let units = try await client.listUnits()
        #expect(units.map(\.name) == ["a.service", "b.service"])
        #expect(units[0].desiredState == .launched)
        // Both pages went over one kept-alive connection.
        #expect(server.connections == 1)
        await server.shutdown()
    }

    @Test func missingUnitIsNilAndErrorsCarryFleetsMessage() async throws {
        let server = try await MiniHTTPServer(socketPath: temporarySocketPath("errors")) { request in
            if request.uri.hasPrefix("/fleet/v1/units/web%2F1.service") { return .json(#"{"error":{"code":404,"message":"unit not found"}}"#, status: 404) }
            return .json(#"{"error":{"code":409,"message":"unit exists with different options"}}"#, status: 409)
        }
        let client = FlotillaClient(endpoint: .unix(path: server.socketPath))
        #expect(try await client.unit(named: "web/1.service") == nil)
        await #expect(throws: ClientError.api(status: 409, message: "unit exists with different options")) {
            try await client.setUnitTargetState(named: "web.service", .launched)
        }
        #expect(server.log.last?.method == "PUT")
        #expect(server.log.last.map { String(decoding: $0.body, as: UTF8.self) } == #"{"desiredState":"launched","name":"web.service"}"#)
        await server.shutdown()
    }

    @Test func putReportsCreatedOrModified() async throws {
        let server = try await MiniHTTPServer(socketPath: temporarySocketPath("put")) { request in
            request.uri.contains("new") ? .full(status: 201, contentType: nil, body: [], delay: .zero, keepAlive: true)
                : .full(status: 204, contentType: nil, body: [], delay: .zero, keepAlive: true)
        }
        let client = FlotillaClient(endpoint: .unix(path: server.socketPath))
        let option = FleetUnitOption(section: "Service", name: "ExecStart", value: "/bin/true")
        #expect(try await client.createUnit(named: "new.service", options: [option], desiredState: .inactive) == .created)
        #expect(try await client.createUnit(named: "old.service", options: [option], desiredState: .inactive) == .modified)
        await server.shutdown()
    }

    @Test func cannotConnectNamesTheEndpoint() async throws {
        let path = temporarySocketPath("absent")
        let client = FlotillaClient(endpoint: .unix(path: path))
        do {
            _ = try await client.listMachines()
            Issue.record("expected a connection error")
        } catch {
            guard case .connection(let message) = error else { Issue.record("got \(error)"); return }
            #expect(message.contains("unix://\(path)"))
            #expect(message.contains("is flotillad running?"))
        }
    }

    @Test func slowAnswerTimesOut() async throws {
        let server = try await MiniHTTPServer(socketPath: temporarySocketPath("slow")) { _ in
            .full(status: 200, contentType: "application/json", body: Array("{}".utf8), delay: .seconds(5), keepAlive: true)
        }
        let client = FlotillaClient(endpoint: .unix(path: server.socketPath), requestTimeout: .milliseconds(200))
        await #expect(throws: ClientError.timeout) { _ = try await client.clusterStatus() }
        await server.shutdown()
    }

    /// The server answers after 1 s, beyond the 300 ms request timeout: only a long poll's own
    /// allowance (its wait on top) lets the answer through. The wait is 10 s rather than just
    /// above the delay: the suite starts hundreds of tests at once on two cores, and a fresh-clone
    /// run resumed this one's reply after the 800 ms a 500 ms wait allowed.
    @Test func longPollTimeoutIsTheWaitPlusTheRequestTimeout() async throws {
        let server = try await MiniHTTPServer(socketPath: temporarySocketPath("poll")) { _ in
            .full(status: 200, contentType: "application/json", body: Array(#"{"events":[],"lastIndex":7,"isTruncated":false}"#.utf8),
                  delay: .seconds(1), keepAlive: true)
        }
        let client = FlotillaClient(endpoint: .unix(path: server.socketPath), requestTimeout: .milliseconds(300))
        let page = try await client.events(afterIndex: 3, waitMilliseconds: 10_000)
        #expect(page.lastIndex == 7)
        #expect(server.log.first?.uri == "/flotilla/v1/watch?afterIndex=3&waitMilliseconds=10000")
        await server.shutdown()
    }

    @Test func connectionClosedByServerIsReopened() async throws {
        let server = try await MiniHTTPServer(socketPath: temporarySocketPath("close")) { _ in
            .full(status: 200, contentType: "application/json", body: Array(#"{"machines":[]}"#.utf8), delay: .zero, keepAlive: false)
        }
        let client = FlotillaClient(endpoint: .unix(path: server.socketPath))
        for _ in 0..<3 { #expect(try await client.listMachines().isEmpty) }
        #expect(server.connections == 3)
        await server.shutdown()
    }

    @Test func serverThatHangsUpIsAConnectionError() async throws {
        let server = try await MiniHTTPServer(socketPath: temporarySocketPath("hangup")) { _ in .close }
        let client = FlotillaClient(endpoint: .unix(path: server.socketPath))
        await #expect {
            _ = try await client.clusterStatus()
        } throws: { error in
            guard case ClientError.connection = error else { return false }
            return true
        }
        await server.shutdown()
    }

    @Test func malformedJSONIsAnInvalidResponse() async throws {
        let server = try await MiniHTTPServer(socketPath: temporarySocketPath("json")) { _ in .json("{not json") }
        let client = FlotillaClient(endpoint: .unix(path: server.socketPath))
        await #expect {
            _ = try await client.clusterStatus()
        } throws: { error in
            guard case ClientError.invalidResponse = error else { return false }
            return true
        }
        await server.shutdown()
    }

    @Test func rawSendReturnsNon2xxAnswersUnchanged() async throws {
        let server = try await MiniHTTPServer(socketPath: temporarySocketPath("raw")) { _ in
            .json(#"{"error":{"code":503,"message":"no leader"}}"#, status: 503)
        }
        let client = FlotillaClient(endpoint: .unix(path: server.socketPath))
        let response = try await client.send(method: "PUT", pathAndQuery: "/fleet/v1/units/a.service", body: Array("{}".utf8), timeout: nil)
        #expect(response.status == 503)
        #expect(response.contentType == "application/json")
        #expect(String(decoding: response.body, as: UTF8.self).contains("no leader"))
        await server.shutdown()
    }

    @Test func followJournalYieldsLinesAcrossChunks() async throws {
        let server = try await MiniHTTPServer(socketPath: temporarySocketPath("follow")) { _ in
            .chunked(chunks: [(.zero, Array("one\ntw".utf8)), (.milliseconds(20), Array("o\nthree\n".utf8))], end: true)
        }
        let client = FlotillaClient(endpoint: .unix(path: server.socketPath))
        var lines: [String] = []
        for try await line in client.followJournal(unit: "web@1.service", lines: 2) { lines.append(line) }
        #expect(lines == ["one", "two", "three"])
        #expect(server.log.first?.uri == "/flotilla/v1/units/web@1.service/journal?lines=2&follow=true&output=short")
        await server.shutdown()
    }

    @Test func followJournalStopsWhenTheReaderStops() async throws {
        let server = try await MiniHTTPServer(socketPath: temporarySocketPath("stop")) { _ in
            .chunked(chunks: [(.zero, Array("first\n".utf8))], end: false)
        }
        let client = FlotillaClient(endpoint: .unix(path: server.socketPath))
        for try await line in client.followJournal(unit: "a.service", lines: 0) {
            #expect(line == "first")
            break
        }
        await server.shutdown()
    }
}
