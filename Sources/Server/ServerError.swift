/// The error of the server module. `code` is what a peer may see; `message` is for the admin's log
/// and terminal and never contains personal data.
public struct ServerError: Error, CustomStringConvertible, @unchecked Sendable {
    // @unchecked: `underlying` is only read for display.

    public struct Code: Hashable, Sendable, CustomStringConvertible {
        public let rawValue: String
        private init(_ rawValue: String) { self.rawValue = rawValue }

        public static let unknownCertificate = Code("unknownCertificate")
        public static let revoked = Code("revoked")
        public static let replicaMismatch = Code("replicaMismatch")
        public static let incompatibleProtocol = Code("incompatibleProtocol")
        public static let incompatibleSchema = Code("incompatibleSchema")
        public static let replicaRewound = Code("replicaRewound")
        /// The replica pushed a change under a dot the server already holds with other content:
        /// two copies of one replica (a copied file, a second replica from one bundle, a
        /// workstation restored from its own backup).
        public static let replicaForked = Code("replicaForked")
        /// The workstation's clock differs from the server's by more than the server allows.
        public static let clockSkew = Code("clockSkew")
        public static let foreignDot = Code("foreignDot")
        public static let protocolViolation = Code("protocolViolation")
        public static let frameTooLarge = Code("frameTooLarge")
        public static let malformedMessage = Code("malformedMessage")
        public static let timeout = Code("timeout")
        public static let internalError = Code("internalError")
        public static let directory = Code("directory")
        public static let duplicateName = Code("duplicateName")
        public static let unknownName = Code("unknownName")

        public var description: String { rawValue }
    }

    public var code: Code
    public var message: String
    public var underlying: (any Error)?

    public init(_ code: Code, _ message: String, underlying: (any Error)? = nil) {
        self.code = code
        self.message = message
        self.underlying = underlying
    }

    public var description: String { message }
}
