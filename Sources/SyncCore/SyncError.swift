/// The error of SyncCore: a code a program can test, and a message for the person who must act.
public struct SyncError: Error, CustomStringConvertible, @unchecked Sendable {
    // @unchecked: `underlying` is only read for display; every error stored there is immutable.

    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Base: String, Hashable, Sendable {
            case notAReplica, corruptData, unknownTable, unknownColumn, schemaTooNew, protocolViolation, valueTooLarge
        }
        private let base: Base
        private init(_ base: Base) { self.base = base }

        /// The file is not a replica, or not one this program can read.
        public static let notAReplica = Code(.notAReplica)
        /// Stored or received bytes could not be decoded.
        public static let corruptData = Code(.corruptData)
        public static let unknownTable = Code(.unknownTable)
        public static let unknownColumn = Code(.unknownColumn)
        /// The file was written by a newer version of ShelterSync.
        public static let schemaTooNew = Code(.schemaTooNew)
        /// A peer broke the sync protocol.
        public static let protocolViolation = Code(.protocolViolation)
        /// A text is longer than `SyncValue.maximumTextBytes`.
        public static let valueTooLarge = Code(.valueTooLarge)

        public var description: String { base.rawValue }
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
