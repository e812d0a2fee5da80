import Foundation
import Testing
import TestSupport

/// The staff commands in Danish (`SHELTER_LANG=da`), each with at least one assertion on its
/// Danish words; the language chosen by the shelter's setting; local times; and every record that
/// would contradict itself refused with a clear message and nothing written.
@Suite struct DanishCLITests {
    struct Session {
        let dir: TemporaryDirectory
        let replica: String
        var language = "da"

        init(_ name: String) throws {
            dir = try TemporaryDirectory(name)
            replica = dir.file("r.replica")
        }

        func run(_ arguments: [String], language: String? = nil, environment: [String: String] = [:]) throws -> ShelterProcess.Result {
            var env = ["SHELTER_REPLICA": replica, "SHELTER_LANG": language ?? self.language, "TZ": "Europe/Copenhagen"]
            for (key, value) in environment { env[key] = value }
            return try ShelterProcess.run(arguments, environment: env)
        }

        /// Runs a command that must succeed and returns its output.
        func ok(_ arguments: String..., language: String? = nil) throws -> String {
            let result = try run(arguments, language: language)
            #expect(result.status == 0, "\(arguments): \(result)")
            return result.stdout
        }

        /// Runs a command that must fail, changing nothing, and returns its error output.
        func refused(_ arguments: String...) throws -> String {
            let before = try ReplicaInspector(path: replica).snapshot()
            let result = try run(arguments)
            #expect(result.status != 0, "\(arguments) was accepted: \(result)")
            #expect(try ReplicaInspector(path: replica).snapshot() == before, "\(arguments) changed the replica")
            return result.stderr
        }
    }

    @Test func everyStaffCommandSpeaksDanish() throws {
        let s = try Session("danish-cli")
        defer { s.dir.remove() }
        #expect(try ShelterProcess.initStandalone(s.replica, rooms: 3).status == 0)
        let file = ShelterProcess.passphraseFile
        #expect(try s.ok("whoami").contains("(leder) til"))
        #expect(try s.ok("staff", "add", "Jonas", "--role", "husvagt", "--passphrase-file", file) == "Jonas er husvagt\n")
        #expect(try s.ok("staff", "role", "Jonas", "socialrådgiver").contains("Jonas er socialrådgiver"))
        #expect(try s.ok("staff", "add", "Eva", "--role", "medarbejder", "--passphrase-file", file).contains("Eva er kontaktperson"))
        #expect(try s.ok("staff").contains("NAVN"))
        #expect(try s.ok("staff", "remove", "Eva").contains("Eva er fjernet"))
        #expect(try s.refused("staff", "add", "X", "--role", "chef", "--passphrase-file", file).contains("ukendt rolle 'chef'; rollerne er leder, socialrådgiver"))
        #expect(try s.ok("settings", "set", "name=Krisecenter Hegnetslund", "address=Postboks 12, 4600 Køge").contains("name = Krisecenter Hegnetslund"))

        // Admission: the municipality as staff write it; a clear error with the nearest names.
        let admit = try s.ok("admit", "--name", "Anna Jensen", "--cpr", "010190-1234", "--municipality", "koege kommune", "--child", "Mia Jensen",
                             "--room", "1", "--reason", "vold i hjemmet", "--at", "2026-11-20T03:00")
        #expect(admit.hasPrefix("optaget: ophold ") && admit.contains("værelse 1") && admit.contains("orientering ") && admit.contains("til Køge Kommune"))
        #expect(try s.refused("admit", "--name", "B", "--municipality", "Kooge").contains("'Kooge' er ikke en dansk kommune; mente du Køge"))
        let stays = try #require(try s.run(["stays", "--json"]).json()["stays"] as? [[String: Any]])
        let stay = String(try #require(stays.first?["id"] as? String).prefix(8))
        let resident = String(try #require(stays.first?["resident"] as? String).prefix(8))
        // 03:00 Danish time is shown as such (JSON stays UTC).
        #expect(stays.first?["admittedAt"] as? String == "2026-11-20T02:00:00Z")
        #expect(try s.ok("stays").contains("20.11.2026 kl. 03.00"))
        #expect(try s.ok("stays", language: "en").contains("2026-11-20 03:00"))
        #expect(try s.ok("rooms").contains("1 af 3 værelser er optaget"))
        #expect(try s.ok("rooms", "set", "3", "--out-of-service").contains("værelse 3 er ude af drift"))
        let shown = try s.ok("resident", "show", resident)
        #expect(shown.contains("kommune       Køge Kommune (259)") && shown.contains("anonym        nej"))
        #expect(try s.run(["resident", "show", resident, "--json"]).json()["municipalityCode"] as? Int == 259)
        #expect(try s.ok("resident", "set", resident, "telefon=+45 20 30 40 50", "tolk=ja").contains("opdateret"))
        #expect(try s.refused("resident", "set", resident, "farve=rød").contains("ukendt felt 'farve'"))
        #expect(try s.ok("status").contains("usendt"))
        #expect(try s.ok("history", "--limit", "1").contains("kl."))
        #expect(try s.ok("verify").contains("transaktioner"))

        // The plan: a child by her name within the stay; goals in Danish words.
        #expect(try s.ok("plan", "offer", stay, "--child", "Mia", "--accepted", "--hours", "2").hasPrefix("tilbud "))
        let goal = String(try s.ok("plan", "add", stay, "Finde egen bolig").dropFirst("mål ".count).prefix(8))
        #expect(try s.ok("plan", "set", goal, "--status", "opnået").contains("er opnået"))
        #expect(try s.ok("plan", "show", stay).contains("psykolog  barn"))
        let noChild = try s.refused("plan", "offer", stay, "--child", "Bo")
        #expect(noChild.contains("har intet barn, der hedder 'Bo' (hendes børn: ") && !noChild.contains("Mia"), "no name in an error")
        #expect(try s.ok("stay", "set", stay, "self-payment=1200").contains("opdateret"))

        // Notifications: the letter signed with the shelter's name and address.
        let notifications = try #require(try s.run(["notifications", "--json"]).json()["notifications"] as? [[String: Any]])
        #expect(notifications.first?["municipalityCode"] as? Int == 259)
        let notification = String(try #require(notifications.first?["id"] as? String).prefix(8))
        #expect(try s.ok("notifications").contains("indflytning"))
        let letter = try s.ok("notifications", "show", notification)
        #expect(letter.contains("Til Køge Kommune (kommunekode 259)") && letter.hasSuffix("Krisecenter Hegnetslund\nPostboks 12, 4600 Køge\n"))
        #expect(try s.ok("notifications", "sent", notification, "--at", "2026-11-21T10:00").contains("registreret som sendt"))
        #expect(try s.ok("due").contains("ophold \(stay) venter på lederens afgørelse"))

        // Decisions with ids; a complaint names one; the way goes one way.
        let decided = try s.ok("decide", stay, "--not-eligible", "--reason", "ikke-målgruppe", "--at", "2026-11-22T10:00")
        #expect(decided.contains("ikke i målgruppen; opholdet er afsluttet"))
        let decision = String(decided.dropFirst("afgørelse ".count).prefix(8))
        #expect(try s.ok("decisions").contains("ikke i målgruppen: ikke i målgruppen for et krisecenter"))
        let discharge = try s.ok("notifications", "show", String(try #require((try s.run(["notifications", "--pending", "--json"]).json()["notifications"] as? [[String: Any]])?.first?["id"] as? String).prefix(8)))
        #expect(discharge.contains("Begrundelse: ikke optaget: ikke i målgruppen for et krisecenter efter servicelovens § 109"))
        #expect(try s.refused("complaint", "add", decision, "--written", "uenig", "--at", "2026-11-21T10:00").contains("kan ikke ligge før afgørelsen"))
        let complaint = String(try s.ok("complaint", "add", decision, "--written", "Hun er uenig", "--at", "2026-11-23T10:00").dropFirst("klage ".count).prefix(8))
        #expect(try s.ok("complaints").contains("modtaget"))
        #expect(try s.refused("complaint", "forwarded", complaint).contains("kun en klage over en afgørelse, lederen har fastholdt"))
        #expect(try s.ok("complaint", "review", complaint, "--upheld").contains("er taget til følge"))
        #expect(try s.refused("complaint", "review", complaint, "--maintained").contains("er allerede genvurderet (taget til følge)"))
        #expect(try s.refused("complaint", "forwarded", complaint).contains("er taget til følge: kun en klage"))
        #expect(try s.ok("due").contains("klage \(complaint) blev taget til følge: afgørelse \(decision) står ikke længere"))
        #expect(try s.ok("decisions", "--stay", stay).contains("omgjort"))

        // Month end.
        #expect(try s.ok("rates").contains("ingen døgntakster"))
        #expect(try s.ok("rates", "set", "2026", "2.839,50").contains("døgntakst 2026: 2.839,50 kr."))
        #expect(try s.refused("rates", "set", "2026", "2.839").contains("tvetydigt"))
        #expect(try s.ok("rates").contains("2.839,50 kr."))
        let billing = try s.ok("billing", "--month", "2026-11")
        #expect(billing.contains("Køge Kommune") && billing.contains("I alt") && billing.contains("Egenbetalingen"))
        let billingJSON = try s.run(["billing", "--month", "2026-11", "--json"]).json()
        #expect(billingJSON["rate"] as? Double == 2839.5 && billingJSON["selfPayment"] as? Int == 1200)

        // Meetings: past ones with notes; an extra one said as such.
        #expect(try s.ok("meetings", "configure", "--first", "2026-11-02").contains("husmøder hver 14. dag fra 02.11.2026"))
        #expect(try s.ok("meetings", "held", "2026-11-16", "--notes", "Ny husorden").contains("husmødet 16.11.2026 er registreret"))
        #expect(try s.ok("meetings", "held", "2026-11-18", "--notes", "Brandøvelse").contains("ikke en dag på husmødeplanen; registreret som et ekstra husmøde"))
        let past = try s.ok("meetings", "--past")
        #expect(past.contains("18.11.2026  afholdt  ekstra møde  Brandøvelse") && past.contains("16.11.2026  afholdt  Ny husorden"))
        #expect(try s.ok("meetings").contains("30.11.2026"))

        let error = try s.run(["assign", "0000000", "2"])
        #expect(error.stderr.hasPrefix("fejl: ") && error.stderr.contains("ophold: intet id begynder med 0000000"))
        // Retention, erasure, logout, passwd.
        #expect(try s.ok("retention").contains("ingen beboers sidste ophold"))
        #expect(try s.ok("erase", resident, "--yes").contains("er slettet her"))
        let newPassphrase = s.dir.file("new")
        FileManager.default.createFile(atPath: newPassphrase, contents: Data("en helt ny adgangsfrase\n".utf8))
        #expect(try s.ok("passwd", "--passphrase-file", file, "--new-passphrase-file", newPassphrase).contains("adgangsfrasen for"))
        #expect(try s.ok("logout").contains("er logget ud"))
        #expect(try s.refused("admit", "--name", "C", "--municipality", "Køge").contains("log ind først"))
    }

    /// Records that would contradict themselves are refused, in words, and nothing is written.
    @Test func contradictionsAreRefusedAndNothingIsWritten() throws {
        let s = try Session("contradictions")
        defer { s.dir.remove() }
        #expect(try ShelterProcess.initStandalone(s.replica, rooms: 3).status == 0)
        #expect(try s.refused("admit", "--name", "A", "--municipality", "Køge", "--at", "2099-01-01T10:00").contains("Indflytningen kan ikke ligge i fremtiden"))
        #expect(try s.refused("admit", "--name", "A", "--cpr", "010130-4123", "--municipality", "Køge").contains("fødselsdatoen ligger i fremtiden"))
        #expect(try s.refused("admit", "--name", "A", "--municipality", "ukendt").contains("kun et anonymt ophold kan have en ukendt hjemkommune"))
        let admitted = try s.run(["admit", "--name", "A", "--municipality", "Køge", "--room", "1", "--at", "2026-11-20T10:00", "--json"]).json()
        let stay = try #require(admitted["stay"] as? String)
        #expect(try s.refused("discharge", stay, "--reason", "x", "--at", "2026-11-19T10:00").contains("kan ikke ligge før indflytningen"))
        #expect(try s.refused("discharge", stay, "--reason", "x", "--at", "2099-11-19T10:00").contains("Fraflytningen kan ikke ligge i fremtiden"))
        #expect(try s.refused("decide", stay, "--eligible", "--at", "2026-11-19T10:00").contains("Afgørelsen (19.11.2026) kan ikke ligge før indflytningen (20.11.2026)"))
        #expect(try s.refused("meetings", "held", "2099-01-01").contains("Husmødet kan ikke ligge efter i dag"))
        // An anonymous stay may say, as an explicit choice, that her municipality is unknown; the letter says so.
        let anonymous = try s.run(["admit", "--anonymous", "--alias", "Rose", "--municipality", "ukendt", "--json"]).json()
        #expect(anonymous["notification"] is String)
        let notification = String(try #require(anonymous["notification"] as? String).prefix(8))
        let letter = try s.ok("notifications", "show", notification)
        #expect(letter.contains("Til hjemkommunen (ukendt)") && letter.contains("Hendes hjemkommune er ukendt") && !letter.contains("ukendt Kommune"))
        // The municipality corrected: the pending letter follows it, and so does billing.
        let resident = try #require(anonymous["resident"] as? String)
        #expect(try s.ok("resident", "set", String(resident.prefix(8)), "kommune=259").contains("opdateret"))
        #expect(try s.ok("notifications", "show", notification).contains("Til Køge Kommune"))
        let pending = try #require(try s.run(["notifications", "--json"]).json()["notifications"] as? [[String: Any]])
        #expect(pending.first { ($0["id"] as? String)?.hasPrefix(notification) == true }?["municipality"] as? String == "Køge")
    }

    /// `--help` of the staff commands and the checks of their arguments, in both languages.
    @Test func helpAndArgumentChecksInBothLanguages() throws {
        let s = try Session("help")
        defer { s.dir.remove() }
        let danish = try s.run(["admit", "--help"]).stdout, english = try s.run(["admit", "--help"], language: "en").stdout
        #expect(danish.contains("Optag en kvinde") && danish.contains("Hendes hjemkommune") && !danish.contains("Admit a woman"))
        #expect(english.contains("Admit a woman") && english.contains("Her home municipality"))
        #expect(try s.run(["--help"]).stdout.contains("et krisecenters journaler"))
        #expect(try s.run(["complaint", "add", "--help"]).stdout.contains("Afgørelsen (id eller entydigt præfiks"))
        let check = try s.run(["admit", "--anonymous", "--alias", "R", "--name", "X", "--municipality", "Køge"])
        #expect(check.status != 0 && check.stderr.contains("en anonym optagelse må ikke have --name"), "\(check)")
        #expect(try s.run(["billing", "--month", "marts"]).stderr.contains("--month tager ÅÅÅÅ-MM"))
    }

    /// The shelter's setting chooses the language when the workstation names none; SHELTER_LANG
    /// and LANG override it; JSON is the same in both.
    @Test func theLanguageComesFromTheSettingUnlessTheWorkstationSaysOtherwise() throws {
        let s = try Session("language")
        defer { s.dir.remove() }
        #expect(try ShelterProcess.initStandalone(s.replica, rooms: 2).status == 0)
        let neither = ["SHELTER_LANG": "", "LANG": "C.UTF-8"]
        #expect(try s.run(["rooms"], environment: neither).stdout.contains("værelser er optaget"), "Danish by default")
        #expect(try s.refused("settings", "set", "language=fr").contains("sproget skal være da eller en"))
        #expect(try s.ok("settings", "set", "language=en").contains("language = en"))
        #expect(try s.run(["rooms"], environment: neither).stdout.contains("rooms occupied"))
        #expect(try s.run(["rooms"], environment: ["SHELTER_LANG": "", "LANG": "da_DK.UTF-8"]).stdout.contains("værelser er optaget"))
        #expect(try s.run(["rooms"], environment: ["SHELTER_LANG": "da", "LANG": "en_GB.UTF-8"]).stdout.contains("værelser er optaget"))
        let danish = try s.run(["rooms", "--json"], language: "da").stdout, english = try s.run(["rooms", "--json"], language: "en").stdout
        #expect(danish == english)
    }
}
