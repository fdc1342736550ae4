import ArgumentParser
import FleetAPI
import Foundation

/// `flotillactl acl`: ACL tokens for `api_listen` (as `nomad acl` and `consul acl`).
struct ACL: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Manage the ACL tokens api_listen's callers present.",
        discussion: """
            A token's policies say what it may do: management (everything), read, operator (drain, machine \\
            metadata, the gossip keyring, and reads) or units:<glob> (writes to units whose names match, and reads). \\
            The unix socket is the management identity and needs no token.
            """,
        subcommands: [Bootstrap.self, Token.self])
}

private func printToken(_ token: FlotillaACLToken) {
    out("AccessorID:\t\(token.accessorID)")
    if let secret = token.secretID { out("SecretID:\t\(secret)") }
    out("Name:\t\t\(token.name)")
    out("Policies:\t\(token.policies.joined(separator: ", "))")
}

struct Bootstrap: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Create the cluster's first management token (once); prints its secret.")
    @OptionGroup var global: GlobalOptions

    func run() async throws {
        let client = try global.makeClient()
        let token: FlotillaACLToken
        do { token = try await client.bootstrapACL() } catch { throw fail("Error bootstrapping ACLs", error) }
        printToken(token)
    }
}

struct Token: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Create, list and delete ACL tokens.",
                                                    subcommands: [CreateToken.self, ListTokens.self, DeleteToken.self])
}

struct CreateToken: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "create", abstract: "Create a token; prints its secret, shown only now.")
    @OptionGroup var global: GlobalOptions
    @Option(help: "A name for people to know the token by.") var name = ""
    @Option(help: "management, read, operator or units:<glob>; repeat for several.") var policy: [String] = []

    func run() async throws {
        let client = try global.makeClient()
        let token: FlotillaACLToken
        do { token = try await client.createACLToken(FlotillaACLTokenRequest(name: name, policies: policy)) } catch {
            throw fail("Error creating the token", error)
        }
        printToken(token)
    }
}

struct ListTokens: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List the tokens (never their secrets).")
    @OptionGroup var global: GlobalOptions
    @Flag(name: .customLong("no-legend"), help: "Do not print a legend (column headers).") var noLegend = false

    func run() async throws {
        let client = try global.makeClient()
        let tokens: [FlotillaACLToken]
        do { tokens = try await client.listACLTokens() } catch { throw fail("Error listing the tokens", error) }
        if !noLegend { out("ACCESSOR\tNAME\tPOLICIES") }
        for token in tokens { out("\(token.accessorID)\t\(token.name.isEmpty ? "-" : token.name)\t\(token.policies.joined(separator: ","))") }
    }
}

struct DeleteToken: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "delete", abstract: "Delete a token by its accessor ID.")
    @OptionGroup var global: GlobalOptions
    @Argument(help: "The token's accessor ID (acl token list).") var accessor: String

    func run() async throws {
        let client = try global.makeClient()
        do { try await client.deleteACLToken(accessorID: accessor) } catch { throw fail("Error deleting the token", error) }
        out("Deleted token \(accessor)")
    }
}
