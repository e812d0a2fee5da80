import Foundation
import SyncCore

/// A conflict the server found: two writes that did not see each other, or two stays in one room.
/// Nothing is silently lost: every competing value stays readable here until staff resolve it.
public struct Conflict: Hashable, Sendable {
    /// `person`: two current stays of residents with the same CPR number (equal blind indexes):
    /// the same woman admitted twice; the candidates are the two stays, the first confirmed kept.
    public enum Kind: String, Sendable { case field, room, person }
    public enum Status: String, Sendable { case open, resolved }

    /// One competing value: for a `room` conflict, a stay id.
    public struct Candidate: Hashable, Sendable {
        public var value: SyncValue
        public var author: String
        public var replica: String
        public var at: String

        public init(value: SyncValue, author: String, replica: String, at: String) {
            self.value = value
            self.author = author
            self.replica = replica
            self.at = at
        }
    }

    public var id: String
    public var kind: Kind
    public var table: String
    public var row: String
    public var column: String?
    public var status: Status
    public var candidates: [Candidate]
    /// The index of the value the cell holds (the deterministic winner; for a room, the stay that
    /// keeps it); nil for a column that is never decided by a clock.
    public var winner: Int?
    /// For a room conflict: a free room for the stay that lost the room, if there is one.
    public var suggestion: Int?
    public var detectedAt: String?
    public var resolvedBy: String?
    public var resolvedAt: String?

    public init(id: String, kind: Kind, table: String, row: String, column: String?, status: Status = .open,
                candidates: [Candidate], winner: Int?, suggestion: Int? = nil, detectedAt: String? = nil,
                resolvedBy: String? = nil, resolvedAt: String? = nil) {
        self.id = id
        self.kind = kind
        self.table = table
        self.row = row
        self.column = column
        self.status = status
        self.candidates = candidates
        self.winner = winner
        self.suggestion = suggestion
        self.detectedAt = detectedAt
        self.resolvedBy = resolvedBy
        self.resolvedAt = resolvedAt
    }

    /// The candidates as stored in the `candidates` column: JSON, each value as text with its type.
    public static func encode(_ candidates: [Candidate]) -> String {
        let array: [[String: String]] = candidates.map { candidate in
            let type: String
            switch candidate.value {
            case .null: type = "null"
            case .integer: type = "integer"
            case .real: type = "real"
            case .text: type = "text"
            }
            return ["type": type, "value": candidate.value.description, "author": candidate.author,
                    "replica": candidate.replica, "at": candidate.at]
        }
        let data = (try? JSONSerialization.data(withJSONObject: array, options: [.sortedKeys])) ?? Data("[]".utf8)
        return String(decoding: data, as: UTF8.self)
    }

    public static func decode(_ text: String) -> [Candidate] {
        guard let array = (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [[String: String]] else { return [] }
        return array.map { object in
            let raw = object["value"] ?? ""
            let value: SyncValue
            switch object["type"] {
            case "integer": value = Int64(raw).map(SyncValue.integer) ?? .text(raw)
            case "real": value = Double(raw).map(SyncValue.real) ?? .text(raw)
            case "null": value = .null
            default: value = .text(raw)
            }
            return Candidate(value: value, author: object["author"] ?? "", replica: object["replica"] ?? "", at: object["at"] ?? "")
        }
    }
}
