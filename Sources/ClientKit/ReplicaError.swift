import ShelterDomain
import SyncCore

/// The error of ClientKit: what went wrong, for the staff member or engineer who must act.
public struct ReplicaError: Error, CustomStringConvertible, @unchecked Sendable {
    // @unchecked: `underlying` is only read for display; the errors stored there are immutable values.

    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Base: String, Hashable, Sendable {
            case fileNotFound, fileExists, notAReplica, schemaTooNew, readOnly, unknownID, ambiguousID,
                 rule, storage, invalidArgument, syncFailed, notLoggedIn, alreadyStaying
        }
        private let base: Base
        private init(_ base: Base) { self.base = base }

        public static let fileNotFound = Code(.fileNotFound)
        public static let fileExists = Code(.fileExists)
        public static let notAReplica = Code(.notAReplica)
        public static let schemaTooNew = Code(.schemaTooNew)
        public static let readOnly = Code(.readOnly)
        public static let unknownID = Code(.unknownID)
        public static let ambiguousID = Code(.ambiguousID)
        /// A rule of the shelter refused the action (see `domain`).
        public static let rule = Code(.rule)
        public static let storage = Code(.storage)
        public static let invalidArgument = Code(.invalidArgument)
        /// The sync server could not be reached, refused, or broke off; the replica is unchanged.
        public static let syncFailed = Code(.syncFailed)
        /// The action needs a member of staff's session (`shelter login`), or hers was refused.
        public static let notLoggedIn = Code(.notLoggedIn)
        /// A resident with the same CPR number is staying here now (`Admission.admitAgain` admits anyway).
        public static let alreadyStaying = Code(.alreadyStaying)

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

    init(_ error: DomainError) {
        self.init(.rule, error.message, underlying: error)
    }

    /// The rule that refused the action, when one did.
    public var domain: DomainError? { underlying as? DomainError }

    public var description: String { message }
}
