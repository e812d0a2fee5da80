import Foundation

/// Moments in the records (admissions, discharges), stored as UTC ISO 8601 text `YYYY-MM-DDTHH:MM:SSZ`.
public enum Timestamp {
    /// Parses what staff type for `--at`: `YYYY-MM-DDTHH:MM[:SS][.fff](Z|±HH:MM)`, or the same without
    /// a zone (local time of this workstation), or a date `YYYY-MM-DD` (local midnight).
    public static func parse(_ text: String, timeZone: TimeZone = .current) throws(DomainError) -> Date {
        // Made only when thrown: the catalogue lookup cost every parse (the rules parse every moment).
        func invalid() -> DomainError { DomainError(.invalidValue, t("err.Timestamp.108", ("p1", text))) }
        let s = text.trimmingCharacters(in: .whitespaces)
        guard s.count >= 10, let date = CivilDate(String(s.prefix(10))) else { throw invalid() }
        var rest = Substring(s.dropFirst(10))
        var hour = 0, minute = 0, second = 0.0
        var offset: Int? = nil
        if !rest.isEmpty {
            guard rest.first == "T" || rest.first == " " else { throw invalid() }
            rest = rest.dropFirst()
            // Split off the zone.
            var zonePart = Substring("")
            if rest.hasSuffix("Z") || rest.hasSuffix("z") {
                zonePart = rest.suffix(1)
                rest = rest.dropLast()
            } else if let sign = rest.lastIndex(where: { $0 == "+" || $0 == "-" }) {
                zonePart = rest[sign...]
                rest = rest[..<sign]
            }
            let fields = rest.split(separator: ":", omittingEmptySubsequences: false)
            guard (2...3).contains(fields.count), fields[0].count == 2, fields[1].count == 2,
                  let h = Int(fields[0]), let m = Int(fields[1]), (0...23).contains(h), (0...59).contains(m) else { throw invalid() }
            hour = h
            minute = m
            if fields.count == 3 {
                guard fields[2].count >= 2, let sec = Double(fields[2]), sec >= 0, sec < 60 else { throw invalid() }
                second = sec
            }
            if zonePart == "Z" || zonePart == "z" {
                offset = 0
            } else if !zonePart.isEmpty {
                let sign = zonePart.first == "-" ? -1 : 1
                let digits = zonePart.dropFirst().replacingOccurrences(of: ":", with: "")
                guard digits.count == 4, let hh = Int(digits.prefix(2)), let mm = Int(digits.suffix(2)),
                      hh <= 14, mm < 60 else { throw invalid() }
                offset = sign * (hh * 3600 + mm * 60)
            }
        }
        let localSeconds = Double(date.dayNumber * 86_400 + hour * 3600 + minute * 60) + second
        if let offset {
            return Date(timeIntervalSince1970: localSeconds - Double(offset))
        }
        // No zone given: this workstation's local time.
        let guess = Date(timeIntervalSince1970: localSeconds)
        let zoneOffset = timeZone.secondsFromGMT(for: guess.addingTimeInterval(-Double(timeZone.secondsFromGMT(for: guess))))
        return Date(timeIntervalSince1970: localSeconds - Double(zoneOffset))
    }

    /// `YYYY-MM-DDTHH:MM:SSZ` in UTC.
    public static func format(_ date: Date) -> String {
        let total = Int(date.timeIntervalSince1970.rounded(.down))
        let days = total >= 0 ? total / 86_400 : (total - 86_399) / 86_400
        let secs = total - days * 86_400
        func pad(_ n: Int) -> String { n < 10 ? "0\(n)" : String(n) }
        return "\(CivilDate(dayNumber: days))T\(pad(secs / 3600)):\(pad(secs / 60 % 60)):\(pad(secs % 60))Z"
    }

    /// The calendar day of a moment in a time zone (default: Danish time, where the shelter is).
    public static func civilDate(of date: Date, in timeZone: TimeZone = TimeZone(identifier: "Europe/Copenhagen") ?? .current) -> CivilDate {
        let local = Int(date.timeIntervalSince1970.rounded(.down)) + timeZone.secondsFromGMT(for: date)
        return CivilDate(dayNumber: local >= 0 ? local / 86_400 : (local - 86_399) / 86_400)
    }
}
