import Foundation

/// The language a person reads ShelterSync in: Danish (the shelter's default) or English.
///
/// The choice is the process's: the CLI sets it once at start from `SHELTER_LANG`, `LANG` or the
/// shelter's replicated `language` setting; an app embedding ClientKit sets it the same way. JSON
/// keys and enum values never depend on it.
public enum Language: String, Sendable, CaseIterable {
    case da, en

    private static let lock = NSLock()
    nonisolated(unsafe) private static var chosen: Language = .da

    /// The language texts are made in now (default Danish).
    public static var current: Language {
        get { lock.withLock { chosen } }
        set { lock.withLock { chosen = newValue } }
    }

    /// A language named by an environment value such as `da`, `da_DK.UTF-8`, `en`, `en_GB.UTF-8`;
    /// nil for anything else (`C`, `POSIX`, empty, another language).
    public init?(environmentValue value: String?) {
        guard let value, value.count >= 2 else { return nil }
        switch value.prefix(2).lowercased() {
        case "da": self = .da
        case "en": self = .en
        default: return nil
        }
    }

    /// The workstation's own choice: `SHELTER_LANG`, else `LANG`; nil when neither names da or en.
    public static func fromEnvironment(_ environment: [String: String] = ProcessInfo.processInfo.environment) -> Language? {
        Language(environmentValue: environment["SHELTER_LANG"]) ?? Language(environmentValue: environment["LANG"])
    }
}

/// The catalogue of every text a person reads, one dictionary per language
/// (`Catalogue+Danish.swift`, `Catalogue+English.swift`). A text may hold placeholders `{name}`,
/// filled by `t(_:_:)`. A test checks that both languages have the same keys and placeholders,
/// and that every key the sources use exists.
public enum Catalogue {
    public static func table(_ language: Language) -> [String: String] {
        switch language {
        case .da: danish
        case .en: english
        }
    }

    /// The word for a stable code (`key`, e.g. `kind.stay`) in the current language; `code` itself
    /// when the catalogue has no word for it (a code written by a newer version, say).
    public static func word(_ key: String, else code: String) -> String {
        english[key] == nil ? code : t(key)
    }

    /// The text of `key` in `language` with its placeholders filled; the key itself if it is
    /// missing (the catalogue test makes sure none is).
    public static func text(_ key: String, _ arguments: [(String, String)], language: Language = .current) -> String {
        var text = table(language)[key] ?? table(.en)[key] ?? key
        for (name, value) in arguments {
            text = text.replacingOccurrences(of: "{\(name)}", with: value)
        }
        return text
    }

    /// The placeholders a text holds, in order of appearance.
    public static func placeholders(_ text: String) -> [String] {
        var names: [String] = []
        var rest = Substring(text)
        while let open = rest.firstIndex(of: "{") {
            let after = rest[rest.index(after: open)...]
            guard let close = after.firstIndex(of: "}") else { break }
            names.append(String(after[..<close]))
            rest = after[after.index(after: close)...]
        }
        return names
    }
}

/// The text of a catalogue key in the current language: `t("municipality.notFound", ("typed", text), ("nearest", names))`.
public func t(_ key: String, _ arguments: (String, Any)...) -> String {
    Catalogue.text(key, arguments.map { ($0.0, String(describing: $0.1)) })
}

/// A text that depends on a count: `key.one` for 1, else `key.other`; `{n}` is the count.
public func tn(_ key: String, _ count: Int, _ arguments: (String, Any)...) -> String {
    Catalogue.text(key + (count == 1 ? ".one" : ".other"), [("n", String(count))] + arguments.map { ($0.0, String(describing: $0.1)) })
}
