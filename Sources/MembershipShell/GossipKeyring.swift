import Crypto
import Foundation

/// The gossip encryption keys of a cluster: every datagram and every push-pull frame is sealed
/// with AES-256-GCM under the primary key and opened with whichever key of the ring fits, as
/// memberlist's keyring does. Rotation follows from that: install a new key everywhere (every
/// member now opens both), make it primary (members seal with it; the others still open it),
/// then remove the old one.
///
/// ```
/// sealed := version:u8(=0x81) nonce[12] ciphertext tag[16]
/// AAD    := version channel:u8        (0 datagram, 1 stream)
/// ```
/// The version byte differs from `MembershipCodec.version` (1), so a plaintext message is never
/// mistaken for a sealed one. The channel in the associated data binds a sealed message to the
/// socket kind it was made for: a captured push-pull frame replayed as a datagram does not open.
/// Nonces are 96 random bits per message (NIST SP 800-38D's bound of 2^32 messages per key is
/// some years of gossip at memberlist's rates); a replayed packet opens, which SWIM tolerates,
/// since every state message carries an incarnation and stale ones change nothing.
public struct GossipKeyring: Sendable {
    /// AES-256: 32 bytes.
    public static let keyBytes = 32
    /// Keys kept at once. Opening tries each, so a garbage packet costs at most this many
    /// authentications; a rotation needs two.
    public static let keysMax = 8
    public static let version: UInt8 = 0x81
    public static let nonceBytes = 12
    public static let tagBytes = 16
    /// What sealing adds to a message: 29 bytes, so memberlist's 1,400-byte datagram becomes
    /// 1,429, within an Ethernet MTU's 1,472 bytes of UDP payload.
    public static let overheadBytes = 1 + nonceBytes + tagBytes

    public enum Channel: UInt8, Sendable {
        case datagram = 0
        case stream = 1
    }

    /// The keys, primary first. Never empty, no duplicates, at most `keysMax`.
    public let keys: [[UInt8]]

    public var primaryKey: [UInt8] { keys[0] }

    /// `keys` as AES keys, made once: sealing and opening run for every packet.
    private let symmetricKeys: [SymmetricKey]

    public init(keys: [[UInt8]]) throws(GossipKeyringError) {
        guard !keys.isEmpty else { throw .empty }
        guard keys.count <= Self.keysMax else { throw .tooManyKeys(count: keys.count, keysMax: Self.keysMax) }
        for (index, key) in keys.enumerated() {
            guard key.count == Self.keyBytes else { throw .badKeyLength(index: index, bytes: key.count) }
            guard !keys[..<index].contains(key) else { throw .duplicateKey(index: index) }
        }
        self.keys = keys
        symmetricKeys = keys.map { SymmetricKey(data: $0) }
    }

    /// A fresh 256-bit key from the system's secure generator.
    /// The first 8 bytes of the key's SHA-256, hex: a name for a key that does not reveal it.
    public static func fingerprint(of key: [UInt8]) -> String {
        SHA256.hash(data: key).prefix(8).map { String(format: "%02x", $0) }.joined()
    }

    public static func generateKey() -> [UInt8] {
        SymmetricKey(size: .bits256).withUnsafeBytes { Array($0) }
    }

    // MARK: Sealing and opening

    /// Seals `plaintext` under the primary key with a fresh random nonce.
    public func seal(_ plaintext: [UInt8], channel: Channel) -> [UInt8] {
        let additional = [Self.version, channel.rawValue]
        // Sealing fails only for a key or nonce of the wrong size, which `init` rules out.
        let box = try! AES.GCM.seal(plaintext, using: symmetricKeys[0], nonce: AES.GCM.Nonce(), authenticating: additional)
        var sealed: [UInt8] = []
        sealed.reserveCapacity(Self.overheadBytes + plaintext.count)
        sealed.append(Self.version)
        sealed.append(contentsOf: box.nonce)
        sealed.append(contentsOf: box.ciphertext)
        sealed.append(contentsOf: box.tag)
        return sealed
    }

    /// The plaintext if some key of the ring authenticates `sealed` for `channel`, else nil.
    /// Nothing of an unauthenticated message reaches a decoder.
    public func open(_ sealed: [UInt8], channel: Channel) -> [UInt8]? {
        guard sealed.count >= Self.overheadBytes, sealed[0] == Self.version,
              let nonce = try? AES.GCM.Nonce(data: sealed[1..<(1 + Self.nonceBytes)]),
              let box = try? AES.GCM.SealedBox(nonce: nonce, ciphertext: sealed[(1 + Self.nonceBytes)..<(sealed.count - Self.tagBytes)],
                                               tag: sealed[(sealed.count - Self.tagBytes)...]) else { return nil }
        let additional = [Self.version, channel.rawValue]
        for key in symmetricKeys {
            if let plaintext = try? AES.GCM.open(box, using: key, authenticating: additional) {
                return Array(plaintext)
            }
        }
        return nil
    }

    // MARK: The keyring file

    /// Reads a keyring file's text: one base64 key (32 bytes decoded) per line, the primary
    /// first; blank lines and lines starting with `#` are ignored. Errors name the line.
    public static func parse(_ text: String) throws(GossipKeyringError) -> GossipKeyring {
        var keys: [[UInt8]] = []
        for (number, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = rawLine.filter { $0 != " " && $0 != "\t" && $0 != "\r" }
            if line.isEmpty || line.hasPrefix("#") { continue }
            guard let data = Data(base64Encoded: String(line)) else { throw .badLine(line: number + 1, reason: "not base64") }
            let key = [UInt8](data)
            guard key.count == keyBytes else {
                throw .badLine(line: number + 1, reason: "a key is \(keyBytes) bytes (44 base64 characters), this one is \(key.count)")
            }
            guard !keys.contains(key) else { throw .badLine(line: number + 1, reason: "the same key is listed twice") }
            keys.append(key)
        }
        return try GossipKeyring(keys: keys)
    }

    /// The keyring file's text for these keys, primary first.
    public func fileText() -> String {
        "# Gossip encryption keys (AES-256-GCM), one base64 key per line; the first one encrypts.\n"
            + keys.map { Data($0).base64EncodedString() + "\n" }.joined()
    }
}

/// Two keyrings are equal when they hold the same keys in the same order (the AES keys follow).
extension GossipKeyring: Equatable {
    public static func == (left: GossipKeyring, right: GossipKeyring) -> Bool { left.keys == right.keys }
}

public enum GossipKeyringError: Error, Hashable, Sendable, CustomStringConvertible {
    case empty
    case tooManyKeys(count: Int, keysMax: Int)
    case badKeyLength(index: Int, bytes: Int)
    case duplicateKey(index: Int)
    case badLine(line: Int, reason: String)

    public var description: String {
        switch self {
        case .empty: "the keyring has no key"
        case .tooManyKeys(let count, let keysMax): "the keyring has \(count) keys; at most \(keysMax)"
        case .badKeyLength(let index, let bytes): "key \(index + 1) is \(bytes) bytes; gossip keys are \(GossipKeyring.keyBytes)"
        case .duplicateKey(let index): "key \(index + 1) is listed twice"
        case .badLine(let line, let reason): "line \(line): \(reason)"
        }
    }
}
