import Foundation

/// A fresh directory under the system temp dir, removed by `remove()` (call it in `defer`).
public struct TemporaryDirectory: Sendable {
    public let path: String

    public init(_ label: String = "shelter") throws {
        let base = FileManager.default.temporaryDirectory.path
        let path = "\(base)/\(label)-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        self.path = path
    }

    public func file(_ name: String) -> String { "\(path)/\(name)" }

    public func remove() { try? FileManager.default.removeItem(atPath: path) }
}
