/// Every text in Danish. Keys are grouped by area; keep the same order in `Catalogue+English.swift`.
extension Catalogue {
    static let danish: [String: String] = [
        // MARK: common
        "common.yes": "ja",
        "common.no": "nej",

        // MARK: admin page and server replicas

    ]
}
