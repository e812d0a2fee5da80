/// Every text in English. Keys are grouped by area; keep the same order in `Catalogue+Danish.swift`.
extension Catalogue {
    static let english: [String: String] = [
        // MARK: common
        "common.yes": "yes",
        "common.no": "no",

        // MARK: admin page and server replicas

    ]
}
