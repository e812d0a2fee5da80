import Foundation
/// Amounts in Danish kroner as staff type and read them, held as whole øre.
///
/// Accepted: `2839`, `2839.50`, `2839,50`, `2.839,50`, `2,839.50`, `2 839,50` (and a trailing `kr`).
/// Refused as ambiguous: one separator followed by exactly three digits (`2.839`, `2,839`: a
/// thousands separator, or three decimals?), and anything else that is not an amount.
public enum Kroner {
    public static func parseØre(_ text: String) throws(DomainError) -> Int {
        var s = text.trimmingCharacters(in: .whitespaces).lowercased()
        for suffix in ["kr.", "kr", "dkk"] where s.hasSuffix(suffix) { s = String(s.dropLast(suffix.count)).trimmingCharacters(in: .whitespaces) }
        // "2.839,-": whole kroner, as Danish prices are written (a dot before it groups thousands).
        var wholeKroner = false
        for suffix in [",-", ".-"] where s.hasSuffix(suffix) {
            s = String(s.dropLast(suffix.count))
            wholeKroner = true
        }
        if wholeKroner && s.contains(".") && !s.contains(",") {
            let groups = s.split(separator: ".", omittingEmptySubsequences: false)
            guard groups.dropFirst().allSatisfy({ $0.count == 3 }), (1...3).contains(groups.first?.count ?? 0) else {
                throw DomainError(.invalidValue, t("amount.invalid", ("text", text)))
            }
            s = s.replacingOccurrences(of: ".", with: "")
        }
        if s.hasPrefix("dkk") { s = String(s.dropFirst(3)).trimmingCharacters(in: .whitespaces) }
        s = s.replacingOccurrences(of: " ", with: "").replacingOccurrences(of: "\u{00A0}", with: "")
        // Made only when thrown: the catalogue lookup cost every parse (the rules parse every moment).
        func invalid() -> DomainError { DomainError(.invalidValue, t("amount.invalid", ("text", text))) }
        guard !s.isEmpty, s.allSatisfy({ $0.isASCII && ($0.isNumber || $0 == "." || $0 == ",") }), s.first?.isNumber == true, s.last?.isNumber == true else { throw invalid() }
        let separators = s.filter { $0 == "." || $0 == "," }
        var whole = s, fraction = ""
        if let last = s.lastIndex(where: { $0 == "." || $0 == "," }) {
            let after = s[s.index(after: last)...]
            let kinds = Set(separators)
            if kinds.count == 2 {
                // Both kinds: the last one is the decimal mark; the other only groups thousands.
                guard after.count <= 2, separators.filter({ $0 == s[last] }).count == 1 else { throw invalid() }
                fraction = String(after)
                whole = String(s[..<last]).replacingOccurrences(of: s[last] == "," ? "." : ",", with: "")
            } else if separators.count == 1 {
                if after.count == 3 { throw DomainError(.invalidValue, t("amount.ambiguous", ("text", text))) }
                guard after.count <= 2 else { throw invalid() }
                fraction = String(after)
                whole = String(s[..<last])
            } else {
                // Several of one kind: thousands groups, no decimals.
                whole = s.replacingOccurrences(of: String(s[last]), with: "")
            }
            if kinds.count == 2 || separators.count > 1 {
                // Groups of three after the first.
                let groups = String(s[..<(kinds.count == 2 ? last : s.endIndex)]).split(whereSeparator: { $0 == "." || $0 == "," })
                guard groups.dropFirst().allSatisfy({ $0.count == 3 }), (groups.first?.count ?? 0) <= 3 else { throw invalid() }
            }
        }
        guard let kroner = Int(whole), whole.count <= 9 else { throw invalid() }
        let øre = fraction.isEmpty ? 0 : (Int(fraction.count == 1 ? fraction + "0" : fraction) ?? 0)
        return kroner * 100 + øre
    }

    /// `2.839,50 kr.` in Danish, `2,839.50 kr` in English; whole amounts without øre.
    public static func format(øre: Int, language: Language = .current) -> String {
        let negative = øre < 0
        let kroner = abs(øre) / 100, rest = abs(øre) % 100
        let digits = String(kroner)
        var grouped = ""
        for (index, digit) in digits.enumerated() {
            if index > 0 && (digits.count - index) % 3 == 0 { grouped.append(language == .da ? "." : ",") }
            grouped.append(digit)
        }
        let decimals = rest == 0 ? "" : (language == .da ? "," : ".") + (rest < 10 ? "0\(rest)" : String(rest))
        return (negative ? "-" : "") + grouped + decimals + (language == .da ? " kr." : " kr")
    }
}
