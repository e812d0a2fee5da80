import ShelterDomain

/// `HOST:PORT` of the sync server (`[::1]:7443` for an IPv6 address).
public struct ServerAddress: Hashable, Sendable, CustomStringConvertible {
    public var host: String
    public var port: Int

    public init(_ text: String) throws {
        let invalid = ReplicaError(.invalidArgument, t("address.invalid", ("text", text)))
        var hostPart: Substring
        let portPart: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]"), text[text.index(after: close)...].hasPrefix(":") else { throw invalid }
            hostPart = text[text.index(after: text.startIndex)..<close]
            portPart = text[text.index(close, offsetBy: 2)...]
        } else {
            guard let colon = text.lastIndex(of: ":") else { throw invalid }
            hostPart = text[..<colon]
            portPart = text[text.index(after: colon)...]
        }
        hostPart = hostPart.isEmpty ? "" : hostPart
        guard !hostPart.isEmpty, let port = Int(portPart), (0...65_535).contains(port) else { throw invalid }
        host = String(hostPart)
        self.port = port
    }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }

    /// Whether the host is an IP address literal (then the certificate's IP names are checked).
    var isIPAddress: Bool {
        host.contains(":") || host.split(separator: ".").count == 4 && host.split(separator: ".").allSatisfy { UInt8($0) != nil }
    }
}
