/// The error of ShelterDomain: a rule of the shelter that an input breaks.
public struct DomainError: Error, Hashable, Sendable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Base: String, Hashable, Sendable {
            case invalidCPR, anonymityViolation, invalidValue, roomUnavailable, invalidTransition, unknownField, notPermitted
        }
        private let base: Base
        private init(_ base: Base) { self.base = base }

        public static let invalidCPR = Code(.invalidCPR)
        /// A name or CPR number on an anonymous stay.
        public static let anonymityViolation = Code(.anonymityViolation)
        public static let invalidValue = Code(.invalidValue)
        /// The room does not exist, is out of service or is occupied.
        public static let roomUnavailable = Code(.roomUnavailable)
        /// The stay is not in a state that allows the action.
        public static let invalidTransition = Code(.invalidTransition)
        public static let unknownField = Code(.unknownField)
        public static let notPermitted = Code(.notPermitted)

        public var description: String { base.rawValue }
    }

    public var code: Code
    /// Written for the staff member who must act; never contains a name or CPR number.
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }
}
