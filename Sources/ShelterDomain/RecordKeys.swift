import Crypto
import Foundation
import SyncCore

/// The keys that keep personal data ciphertext outside a staff session (DESIGN §4, second half).
///
/// - The **shelter key** (32 random bytes, `ShelterKey`) is sealed with HPKE (X25519, HKDF-SHA256,
///   ChaCha20-Poly1305) to each member of staff's agreement key: a *grant*, a row of `key_grants`.
///   Only a session holding her X25519 private key opens it. More than one shelter key may exist
///   (two workstations made one each offline, or a rotation): each is known by its id.
/// - Each resident's own key (32 random bytes) is wrapped under a shelter key with AES-256-GCM and
///   kept in her row (`residents.key`): erasing her means forgetting that key.
/// - Every personal cell is AES-256-GCM under the key of the resident it belongs to (the shelter
///   key itself for rows that belong to no resident, such as a house meeting's notes), with the
///   table, row, column and key reference as associated data: a ciphertext moved to another cell
///   does not open.
///
/// Texts: a personal cell `ss1:<key ref>:<base64 nonce|ciphertext|tag>`, where the key ref is the
/// resident id or `*<shelter key id>`; a wrapped resident key `rk1:<shelter key id>:<base64>`; a grant
/// `hpke1:<shelter key id>:<base64 encapsulated key>:<base64 sealed key>`. Empty and null values
/// stay as they are, so the server can still see that an anonymous resident's name is empty.
/// A session that can open the shelter key grants made to its member of staff (her X25519 private
/// key is in it): a login agent, or keys held in memory.
public protocol GrantOpener: TransactionSigner {
    func openGrant(_ grant: String) throws -> RecordKeys.ShelterKey
}

public enum RecordKeys {
    public static let cellPrefix = "ss1:"
    public static let indexPrefix = "bi1:"
    static let wrappedPrefix = "rk1:"
    static let grantPrefix = "hpke1:"
    static let suite = HPKE.Ciphersuite.Curve25519_SHA256_ChachaPoly

    /// A shelter key and its id (16 hex digits of a SHA-256 over a label and the key).
    public struct ShelterKey: Sendable, Hashable {
        public let bytes: [UInt8]
        public let id: String
        public let key: SymmetricKey

        public init() {
            let bytes = SymmetricKey(size: .bits256).withUnsafeBytes { Array($0) }
            try! self.init(bytes: bytes)
        }

        public init(bytes: [UInt8]) throws(DomainError) {
            guard bytes.count == 32 else { throw DomainError(.invalidValue, t("err.RecordKeys.41")) }
            self.bytes = bytes
            id = Self.id(of: bytes)
            key = SymmetricKey(data: bytes)
        }

        static func id(of bytes: [UInt8]) -> String {
            SHA256.hash(data: Array("ShelterSync shelter key id".utf8) + bytes).prefix(8).map { String(format: "%02x", $0) }.joined()
        }

        public static func == (a: ShelterKey, b: ShelterKey) -> Bool { a.bytes == b.bytes }
        public func hash(into hasher: inout Hasher) { hasher.combine(bytes) }
    }

    // MARK: Blind index

    /// The blind index of a CPR number (the CipherSweet technique): HMAC-SHA256 of its ten digits
    /// under a key derived (HKDF-SHA256) from a shelter key, the first 16 bytes in hex, with the
    /// shelter key's id: `bi1:<shelter key id>:<32 hex digits>`. The same number under the same
    /// shelter key gives the same text; nothing else can be learnt from it without the key.
    public static func cprIndex(_ cpr: String, under shelterKey: ShelterKey) -> String {
        let digits = cpr.filter(\.isNumber)
        let key = HKDF<SHA256>.deriveKey(inputKeyMaterial: shelterKey.key, info: Array("ShelterSync CPR blind index 1".utf8), outputByteCount: 32)
        let mac = HMAC<SHA256>.authenticationCode(for: Array(digits.utf8), using: key)
        return indexPrefix + shelterKey.id + ":" + mac.prefix(16).map { String(format: "%02x", $0) }.joined()
    }

    /// The id of the shelter key a blind index was computed under; nil when it is not one.
    public static func keyID(ofIndex index: String) -> String? {
        guard isCPRIndex(index) else { return nil }
        return String(index.split(separator: ":")[1])
    }

    /// Whether a text has the form of a blind index.
    public static func isCPRIndex(_ text: String) -> Bool {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        return parts.count == 3 && parts[0] == "bi1" && parts[1].count == 16 && parts[2].count == 32
            && parts[1].allSatisfy(\.isHexDigit) && parts[2].allSatisfy(\.isHexDigit)
    }

    // MARK: Grants

    /// The shelter key sealed to a member of staff's agreement key (base64, as in her staff row).
    public static func grant(_ shelterKey: ShelterKey, to agreementKey: String, staffID: String) throws -> String {
        guard let raw = Data(base64Encoded: agreementKey),
              let recipient = try? Curve25519.KeyAgreement.PublicKey(rawRepresentation: raw) else {
            throw DomainError(.invalidValue, t("err.RecordKeys.42", ("p1", staffID)))
        }
        var sender = try HPKE.Sender(recipientKey: recipient, ciphersuite: suite, info: grantInfo(staffID: staffID, keyID: shelterKey.id))
        let sealed = try sender.seal(shelterKey.bytes)
        return grantPrefix + shelterKey.id + ":" + sender.encapsulatedKey.base64EncodedString() + ":" + sealed.base64EncodedString()
    }

    /// Opens a grant with her agreement private key.
    public static func open(grant: String, staffID: String, with privateKey: Curve25519.KeyAgreement.PrivateKey) throws(DomainError) -> ShelterKey {
        guard let parts = grantParts(grant) else { throw DomainError(.invalidValue, t("err.RecordKeys.43", ("p1", staffID))) }
        guard var recipient = try? HPKE.Recipient(privateKey: privateKey, ciphersuite: suite,
                                                   info: grantInfo(staffID: staffID, keyID: parts.keyID), encapsulatedKey: parts.encapsulated),
              let opened = try? recipient.open(parts.sealed) else {
            throw DomainError(.notPermitted, t("err.RecordKeys.44", ("p1", staffID)))
        }
        let key = try ShelterKey(bytes: Array(opened))
        guard key.id == parts.keyID else { throw DomainError(.invalidValue, t("err.RecordKeys.45", ("p1", staffID))) }
        return key
    }

    /// The shelter key id a grant names, nil when it is not a grant.
    public static func keyID(ofGrant grant: String) -> String? { grantParts(grant)?.keyID }

    static func grantParts(_ grant: String) -> (keyID: String, encapsulated: Data, sealed: Data)? {
        guard grant.hasPrefix(grantPrefix) else { return nil }
        let parts = grant.dropFirst(grantPrefix.count).split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 3, isKeyID(parts[0]), let encapsulated = Data(base64Encoded: String(parts[1])), encapsulated.count == 32,
              let sealed = Data(base64Encoded: String(parts[2])), sealed.count == 32 + 16 else { return nil }
        return (String(parts[0]), encapsulated, sealed)
    }

    static func grantInfo(staffID: String, keyID: String) -> Data { Data("ShelterSync grant \(staffID) \(keyID)".utf8) }

    static func isKeyID(_ text: some StringProtocol) -> Bool {
        text.utf8.count == 16 && text.utf8.allSatisfy { (48...57).contains($0) || (97...102).contains($0) }
    }

    // MARK: Resident keys

    /// A new resident key wrapped under `shelterKey`.
    public static func newResidentKey(residentID: String, under shelterKey: ShelterKey) throws -> (key: SymmetricKey, wrapped: String) {
        let key = SymmetricKey(size: .bits256)
        return (key, try wrap(key, residentID: residentID, under: shelterKey))
    }

    public static func wrap(_ residentKey: SymmetricKey, residentID: String, under shelterKey: ShelterKey) throws -> String {
        let box = try AES.GCM.seal(residentKey.withUnsafeBytes { Array($0) }, using: shelterKey.key,
                                   authenticating: Array("ShelterSync resident key \(residentID) \(shelterKey.id)".utf8))
        return wrappedPrefix + shelterKey.id + ":" + box.combined!.base64EncodedString()
    }

    /// The shelter key id a wrapped resident key needs, nil when the text is not one.
    public static func keyID(ofWrapped wrapped: String) -> String? {
        // `rk1:` + 16 hex digits + `:` + 80 base64 characters, read byte by byte (the server asks
        // this of every resident key it merges; splitting the text cost 3 % of a push).
        let fast = wrapped.utf8.withContiguousStorageIfAvailable { b -> String? in
            guard b.count == 101, b[0] == 114, b[1] == 107, b[2] == 49, b[3] == 58, b[20] == 58 else { return nil }
            for i in 4..<20 where !((48...57).contains(b[i]) || (97...102).contains(b[i])) { return nil }
            for i in 21..<101 where !isBase64(b[i]) { return nil }
            return String(decoding: UnsafeBufferPointer(rebasing: b[4..<20]), as: UTF8.self)
        }
        if let fast { return fast }
        guard wrapped.hasPrefix(wrappedPrefix) else { return nil }
        let parts = wrapped.dropFirst(wrappedPrefix.count).split(separator: ":", omittingEmptySubsequences: false)
        // 12 + 32 + 16 = 60 bytes are 80 base64 characters without padding (checked by form: the
        // server asks this of every resident key it merges).
        guard parts.count == 2, isKeyID(parts[0]), parts[1].utf8.count == 80, parts[1].utf8.allSatisfy(isBase64) else { return nil }
        return String(parts[0])
    }

    static func isBase64(_ byte: UInt8) -> Bool {
        (65...90).contains(byte) || (97...122).contains(byte) || (48...57).contains(byte) || byte == 43 || byte == 47
    }

    public static func unwrap(_ wrapped: String, residentID: String, with shelterKey: ShelterKey) throws(DomainError) -> SymmetricKey {
        guard keyID(ofWrapped: wrapped) == shelterKey.id,
              let combined = Data(base64Encoded: String(wrapped.split(separator: ":").last ?? "")),
              let box = try? AES.GCM.SealedBox(combined: combined),
              let opened = try? AES.GCM.open(box, using: shelterKey.key,
                                             authenticating: Array("ShelterSync resident key \(residentID) \(shelterKey.id)".utf8)) else {
            throw DomainError(.invalidValue, t("err.RecordKeys.46", ("p1", residentID)))
        }
        return SymmetricKey(data: opened)
    }

    // MARK: Cells

    /// The key reference of cells kept under a shelter key itself.
    public static func shelterReference(_ shelterKey: ShelterKey) -> String { "*" + shelterKey.id }

    /// A personal cell's text, encrypted. `reference`: the resident id, or `shelterReference`.
    public static func seal(_ plaintext: String, key: SymmetricKey, reference: String, table: String, row: String, column: String) throws -> String {
        let box = try AES.GCM.seal(Array(plaintext.utf8), using: key,
                                   authenticating: cellData(reference: reference, table: table, row: row, column: column))
        return cellPrefix + reference + ":" + box.combined!.base64EncodedString()
    }

    /// The key reference of an encrypted cell, nil when the text is not one.
    public static func reference(ofCell text: String) -> String? { cellParts(text)?.reference }

    /// Whether `text` is an encrypted cell (well formed; whether it opens is another matter).
    public static func isSealedCell(_ text: String) -> Bool {
        // The form checked on the bytes, without decoding (the server checks every personal cell
        // of every change: the decode was a tenth of its merge): `cellParts` accepts the same.
        text.utf8.withContiguousStorageIfAvailable(isSealedCell(bytes:)) ?? (cellParts(text) != nil)
    }

    /// `ss1:`, a reference of 1–128 bytes without a colon, a colon, then standard base64 (padded)
    /// of at least a nonce and a tag (28 bytes).
    static func isSealedCell(bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        let prefix: [UInt8] = Array(cellPrefix.utf8)
        guard bytes.count > prefix.count, bytes.prefix(prefix.count).elementsEqual(prefix) else { return false }
        guard let colon = bytes[prefix.count...].firstIndex(of: UInt8(ascii: ":")) else { return false }
        let referenceLength = colon - prefix.count
        guard referenceLength > 0, referenceLength <= 128 else { return false }
        let encoded = bytes[(colon + 1)...]
        guard encoded.count >= 40, encoded.count % 4 == 0 else { return false }
        var padding = 0
        for (offset, byte) in encoded.enumerated() {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                 UInt8(ascii: "+"), UInt8(ascii: "/"):
                guard padding == 0 else { return false }
            case UInt8(ascii: "="):
                guard offset >= encoded.count - 2 else { return false }
                padding += 1
            default:
                return false
            }
        }
        return encoded.count / 4 * 3 - padding >= 12 + 16
    }

    public static func open(cell text: String, key: SymmetricKey, table: String, row: String, column: String) throws(DomainError) -> String {
        guard let parts = cellParts(text), let box = try? AES.GCM.SealedBox(combined: parts.combined),
              let opened = try? AES.GCM.open(box, using: key, authenticating: cellData(reference: parts.reference, table: table, row: row, column: column)) else {
            throw DomainError(.invalidValue, t("err.RecordKeys.47", ("p1", column), ("p2", table), ("p3", row)))
        }
        return String(decoding: opened, as: UTF8.self)
    }

    static func cellParts(_ text: String) -> (reference: String, combined: Data)? {
        guard text.hasPrefix(cellPrefix) else { return nil }
        let rest = text.dropFirst(cellPrefix.count)
        guard let colon = rest.lastIndex(of: ":") else { return nil }
        let reference = String(rest[..<colon])
        guard !reference.isEmpty, reference.utf8.count <= 128, !reference.contains(":"),
              let combined = Data(base64Encoded: String(rest[rest.index(after: colon)...])), combined.count >= 12 + 16 else { return nil }
        return (reference, combined)
    }

    static func cellData(reference: String, table: String, row: String, column: String) -> [UInt8] {
        Array("ShelterSync cell\u{1F}\(table)\u{1F}\(row)\u{1F}\(column)\u{1F}\(reference)".utf8)
    }
}
