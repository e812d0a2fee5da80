/// The value of one cell, as it is stored in SQLite and carried in a change.
public enum SyncValue: Hashable, Sendable, CustomStringConvertible {
    case null
    case integer(Int64)
    case real(Double)
    case text(String)

    public var description: String {
        switch self {
        case .null: "null"
        case .integer(let v): String(v)
        case .real(let v): String(v)
        case .text(let v): v
        }
    }

    public var isNull: Bool { self == .null }

    public var textValue: String? {
        if case .text(let v) = self { return v }
        return nil
    }

    public var integerValue: Int64? {
        if case .integer(let v) = self { return v }
        return nil
    }

    public var boolValue: Bool? { integerValue.map { $0 != 0 } }

    public static func bool(_ flag: Bool) -> SyncValue { .integer(flag ? 1 : 0) }

    public static func optionalText(_ text: String?) -> SyncValue { text.map(SyncValue.text) ?? .null }

    public static func optionalInteger(_ value: Int?) -> SyncValue { value.map { .integer(Int64($0)) } ?? .null }

    /// The largest text staff may write in a cell, in UTF-8 bytes (64 KiB): a long note fits many
    /// times over. Checked at the source, before a personal text is encrypted.
    public static let maximumPlainTextBytes = 64 * 1024

    /// The largest text a cell may hold as stored and sent (96 KiB): 64 KiB encrypted and in
    /// base64, with room to spare; no one workstation's values can grow a batch past what every
    /// other can receive.
    public static let maximumTextBytes = 96 * 1024

    /// Whether the value fits in a cell.
    public var fits: Bool {
        if case .text(let text) = self { return text.utf8.count <= Self.maximumTextBytes }
        return true
    }
}
