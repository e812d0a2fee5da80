import Foundation

/// A Danish CPR number (*personnummer*): a real date of birth `DDMMYY` and four digits.
///
/// The seventh digit gives the century (CPR-kontoret's table), so the date is checked in its real
/// year, leap days included. There is no modulus-11 check: Denmark stopped guaranteeing it in 2007.
public struct CPRNumber: Hashable, Sendable, CustomStringConvertible {
    /// Canonical form `DDMMYY-XXXX`.
    public let formatted: String
    public let birthYear: Int
    public let birthMonth: Int
    public let birthDay: Int

    /// Parses `DDMMYY-XXXX` or `DDMMYYXXXX`. With `today`, a date of birth after it is refused
    /// (the seventh digit puts `010130-4…` in 2030).
    public init(_ text: String, today: CivilDate? = nil) throws(DomainError) {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        var digits = Array(trimmed)
        if digits.count == 11 {
            guard digits[6] == "-" else { throw Self.invalid(t("cpr.form")) }
            digits.remove(at: 6)
        }
        guard digits.count == 10, digits.allSatisfy({ $0.isASCII && $0.isNumber }) else {
            throw Self.invalid(t("cpr.form"))
        }
        let n = digits.map { Int(String($0))! }
        let day = n[0] * 10 + n[1], month = n[2] * 10 + n[3], yy = n[4] * 10 + n[5]
        let year = yy + Self.century(yy: yy, seventhDigit: n[6])
        guard (1...12).contains(month) else { throw Self.invalid(t("cpr.month", ("month", month))) }
        guard (1...CivilDate.daysIn(month: month, year: year)).contains(day) else {
            throw Self.invalid(t("cpr.day", ("day", day), ("month", month), ("year", year)))
        }
        if let today, CivilDate(year: year, month: month, day: day) > today {
            throw DomainError(.invalidCPR, t("cpr.bornInFuture"))
        }
        birthYear = year
        birthMonth = month
        birthDay = day
        let s = digits.map(String.init).joined()
        formatted = "\(s.prefix(6))-\(s.suffix(4))"
    }

    /// The century of a birth year from the two-digit year and the seventh digit.
    static func century(yy: Int, seventhDigit: Int) -> Int {
        switch seventhDigit {
        case 0...3: 1900
        case 4, 9: yy <= 36 ? 2000 : 1900
        default: yy <= 57 ? 2000 : 1800
        }
    }

    private static func invalid(_ why: String) -> DomainError {
        // The number itself is personal data: the message never repeats it.
        DomainError(.invalidCPR, t("cpr.invalid", ("why", why)))
    }

    public var description: String { formatted }
}
