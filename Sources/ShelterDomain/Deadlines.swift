/// Danish working days (*hverdage*) and the deadlines of § 109.
public enum Deadlines {
    /// Easter Sunday of `year` (Gregorian calendar; the anonymous Gregorian computus, Meeus/Jones/Butcher).
    public static func easterSunday(_ year: Int) -> CivilDate {
        let a = year % 19, b = year / 100, c = year % 100
        let d = b / 4, e = b % 4, f = (b + 8) / 25, g = (b - f + 1) / 3
        let h = (19 * a + b - d - g + 15) % 30
        let i = c / 4, k = c % 4
        let l = (32 + 2 * e + 2 * i - h - k) % 7
        let m = (a + 11 * h + 22 * l) / 451
        let month = (h + l - 7 * m + 114) / 31
        let day = (h + l - 7 * m + 114) % 31 + 1
        return CivilDate(year: year, month: month, day: day)
    }

    /// The days that are not *hverdage* besides weekends: the Danish public holidays (New Year's Day,
    /// Maundy Thursday, Good Friday, Easter Sunday and Monday, Ascension Day, Whit Sunday and Monday,
    /// Christmas Day, Boxing Day) and Constitution Day, Christmas Eve and New Year's Eve.
    public static func holidays(_ year: Int) -> [CivilDate: String] {
        let easter = easterSunday(year)
        let days: [(CivilDate, String)] = [
            (CivilDate(year: year, month: 1, day: 1), "Nytårsdag"),
            (easter.adding(days: -3), "Skærtorsdag"),
            (easter.adding(days: -2), "Langfredag"),
            (easter, "Påskedag"),
            (easter.adding(days: 1), "2. påskedag"),
            (easter.adding(days: 39), "Kristi himmelfartsdag"),
            (easter.adding(days: 49), "Pinsedag"),
            (easter.adding(days: 50), "2. pinsedag"),
            (CivilDate(year: year, month: 6, day: 5), "Grundlovsdag"),
            (CivilDate(year: year, month: 12, day: 24), "Juleaftensdag"),
            (CivilDate(year: year, month: 12, day: 25), "Juledag"),
            (CivilDate(year: year, month: 12, day: 26), "2. juledag"),
            (CivilDate(year: year, month: 12, day: 31), "Nytårsaftensdag"),
        ]
        // Two can fall on one day (Whit Monday 2028 is Constitution Day).
        return Dictionary(days, uniquingKeysWith: { "\($0) og \($1)" })
    }

    /// Monday to Friday, and not one of `holidays`.
    public static func isWorkingDay(_ date: CivilDate) -> Bool {
        date.weekday <= 5 && holidays(date.year)[date] == nil
    }

    /// The `count`th working day after `date` (not counting `date` itself).
    public static func workingDays(_ count: Int, after date: CivilDate) -> CivilDate {
        var day = date
        var left = count
        while left > 0 {
            day = day.adding(days: 1)
            if isWorkingDay(day) { left -= 1 }
        }
        return day
    }

    /// The Køge standard: the notification is due 3 days after moving in (or out).
    public static func notificationDue(after event: CivilDate) -> CivilDate { event.adding(days: 3) }

    /// The legal limit: 3 working days after the admission (or discharge) date.
    public static func notificationLegalDeadline(after event: CivilDate) -> CivilDate { workingDays(3, after: event) }

    /// A complaint about a decision is in time within 4 weeks of the decision.
    public static func complaintDeadline(decidedOn date: CivilDate) -> CivilDate { date.adding(days: 28) }

    /// House meetings every 14 days from the first one: the next `count` on or after `from`.
    public static func meetings(first: CivilDate, from: CivilDate, count: Int) -> [CivilDate] {
        let offset = max(0, from.dayNumber - first.dayNumber)
        let start = first.adding(days: (offset + 13) / 14 * 14)
        return (0..<max(0, count)).map { start.adding(days: $0 * 14) }
    }
}
