@testable import HTTPAPI
import TestSupport
import NIOHTTP1
import Testing

@Suite(.onBackgroundThreads) struct RoutingAndPagingTests {
    @Test func pathSegmentsArePercentDecodedAndOneTrailingSlashIgnored() {
        #expect(Router.match(method: .GET, path: "/fleet/v1/units/web%401.service") == .route(.getUnit("web@1.service")))
        #expect(Router.match(method: .GET, path: "/fleet/v1/units/") == .route(.listUnits))
        #expect(Router.match(method: .GET, path: "/fleet/v1/units//") == .notFound)
        #expect(Router.match(method: .GET, path: "/flotilla/v1/units/a.service/journal") == .route(.journal(unit: "a.service")))
        #expect(Router.match(method: .PUT, path: "/fleet/v1/state") == .methodNotAllowed(allowed: [.GET]))
    }

    @Test func tokensRoundTripAndPagesEndWithoutAnEmptyOne() throws {
        let items = Array(0..<200)
        let (first, next) = PageToken.first.page(of: items, size: 100)
        #expect(first == items[0..<100])
        let token = try #require(next)
        let parsed = try PageToken.parse(QueryParameters.parse("nextPageToken=\(token.encoded)").get())
        let (second, last) = parsed.page(of: items, size: 100)
        #expect(second == items[100..<200])
        #expect(last == nil)
    }

    @Test func base64URLRoundTrips() {
        for length in 0..<10 {
            let bytes = (0..<length).map { UInt8($0 * 37 & 0xFF) }
            #expect(Base64URL.decode(Base64URL.encode(bytes)) == bytes)
        }
    }
}
