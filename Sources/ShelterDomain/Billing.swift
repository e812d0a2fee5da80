/// The daily rate (*døgntakst*) billed to the home municipality.
///
/// **Days rule**: a stay is billed for each calendar day from its admission day up to, but not
/// including, its discharge day (the day she leaves is not a day of stay; a stay that starts and ends
/// on the same day counts as one day). A stay that has not ended counts to the end of the month.
public enum Billing {
    /// Days of a stay that fall in `month` (1–12) of `year`.
    public static func days(admitted: CivilDate, discharged: CivilDate?, year: Int, month: Int) -> Int {
        let first = CivilDate(year: year, month: month, day: 1)
        let last = CivilDate(year: year, month: month, day: CivilDate.daysIn(month: month, year: year))
        // The last billed day: the day before discharge (a same-day stay: the day itself).
        let end: CivilDate
        if let discharged {
            end = discharged > admitted ? discharged.adding(days: -1) : admitted
        } else {
            end = last
        }
        let from = max(first, admitted), to = min(last, end)
        return from > to ? 0 : to.dayNumber - from.dayNumber + 1
    }

    /// Rate × days (in the rate's unit: øre).
    public static func amount(days: Int, rate: Int) -> Int { days * rate }
}
