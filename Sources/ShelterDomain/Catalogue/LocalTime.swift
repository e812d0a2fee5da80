import Foundation

/// Moments and dates as staff read them: in the workstation's own time zone (`TZ`, default
/// Europe/Copenhagen, where the shelter is), written the Danish way in Danish (`28.11.2026 kl. 03.00`)
/// and as ISO dates in English (`2026-11-28 03:00`). JSON stays UTC ISO 8601.
public enum LocalTime {
    /// `TZ` when it names a zone, else Europe/Copenhagen.
    public static let zone: TimeZone = zone(environment: ProcessInfo.processInfo.environment)

    public static func zone(environment: [String: String]) -> TimeZone {
        if var name = environment["TZ"], !name.isEmpty {
            if name.hasPrefix(":") { name.removeFirst() }
            if let zone = TimeZone(identifier: name) { return zone }
        }
        return TimeZone(identifier: "Europe/Copenhagen") ?? TimeZone(secondsFromGMT: 3600)!
    }

    private static func pad(_ n: Int) -> String { n < 10 ? "0\(n)" : String(n) }

    /// A date: `28.11.2026` in Danish, `2026-11-28` in English.
    public static func date(_ date: CivilDate, language: Language = .current) -> String {
        switch language {
        case .da: "\(pad(date.day)).\(pad(date.month)).\(date.year)"
        case .en: date.description
        }
    }

    /// A stored date (`YYYY-MM-DD`) as staff read it; the text itself if it is not a date.
    public static func date(stored text: String?, language: Language = .current) -> String {
        guard let text else { return "-" }
        return CivilDate(text).map { date($0, language: language) } ?? text
    }

    /// A moment in `zone`: `28.11.2026 kl. 03.00` in Danish, `2026-11-28 03:00` in English.
    public static func dateTime(_ moment: Date, language: Language = .current, zone: TimeZone = zone) -> String {
        let local = Int(moment.timeIntervalSince1970.rounded(.down)) + zone.secondsFromGMT(for: moment)
        let days = local >= 0 ? local / 86_400 : (local - 86_399) / 86_400
        let seconds = local - days * 86_400
        let day = CivilDate(dayNumber: days)
        switch language {
        case .da: return "\(date(day, language: .da)) kl. \(pad(seconds / 3600)).\(pad(seconds / 60 % 60))"
        case .en: return "\(day.description) \(pad(seconds / 3600)):\(pad(seconds / 60 % 60))"
        }
    }

    /// A stored moment (UTC ISO 8601) as staff read it; the text itself if it is not one.
    public static func dateTime(stored text: String?, language: Language = .current, zone: TimeZone = zone) -> String {
        guard let text, !text.isEmpty else { return "-" }
        guard let moment = try? Timestamp.parse(text, timeZone: TimeZone(identifier: "UTC")!) else { return text }
        return dateTime(moment, language: language, zone: zone)
    }

    /// The calendar day of a moment in `zone`.
    public static func civilDate(of moment: Date, zone: TimeZone = zone) -> CivilDate {
        Timestamp.civilDate(of: moment, in: zone)
    }
}

/// When something happened, checked before it is written: never more than five minutes in the
/// future (a typing slip of a day or a year), never before what it follows. The server checks
/// the same against the change's own clock stamp (`ShelterRules`).
public enum EventTime {
    /// How far ahead of the clock an event may be: clocks of two workstations differ a little.
    public static let maximumAhead: TimeInterval = 5 * 60

    /// `what`: the event in words, from the catalogue.
    public static func check(_ moment: Date, now: Date, what: String, notBefore start: Date? = nil, startWhat: String? = nil) throws(DomainError) {
        if moment.timeIntervalSince(now) > maximumAhead {
            throw DomainError(.invalidValue, t("time.inFuture", ("what", what), ("time", LocalTime.dateTime(moment)), ("now", LocalTime.dateTime(now))))
        }
        if let start, moment < start {
            throw DomainError(.invalidValue, t("time.beforeStart", ("what", what), ("time", LocalTime.dateTime(moment)),
                                               ("start", startWhat ?? ""), ("startTime", LocalTime.dateTime(start))))
        }
    }

    /// The same for a day: not after today (in Danish time), not before `start`'s day.
    public static func check(day: CivilDate, today: CivilDate, what: String, notBefore start: CivilDate? = nil, startWhat: String? = nil) throws(DomainError) {
        if day > today {
            throw DomainError(.invalidValue, t("time.dayInFuture", ("what", what), ("date", LocalTime.date(day)), ("today", LocalTime.date(today))))
        }
        if let start, day < start {
            throw DomainError(.invalidValue, t("time.dayBeforeStart", ("what", what), ("date", LocalTime.date(day)),
                                               ("start", startWhat ?? ""), ("startDate", LocalTime.date(start))))
        }
    }
}
