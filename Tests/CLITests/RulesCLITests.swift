import Foundation
import Testing
import TestSupport

@Suite struct RulesCLITests {
    @Test func theRulesThroughTheCLI() throws {
        let dir = try TemporaryDirectory("rules-cli")
        defer { dir.remove() }
        let replica = dir.file("r.replica")
        let env = ["SHELTER_REPLICA": replica]
        func shelter(_ arguments: String...) throws -> ShelterProcess.Result { try ShelterProcess.run(arguments, environment: env) }
        #expect(try ShelterProcess.initStandalone(replica, rooms: 3).status == 0)
        let file = ShelterProcess.passphraseFile
        #expect(try shelter("staff", "add", "Mette", "--role", "leader", "--passphrase-file", file).status == 0)
        #expect(try shelter("staff", "add", "Jonas", "--role", "socialWorker", "--passphrase-file", file).status == 0)
        let badRole = try shelter("staff", "add", "X", "--role", "boss", "--passphrase-file", file)
        #expect(badRole.status != 0 && badRole.stderr.contains("unknown role 'boss'"))
        let staff = try #require(try shelter("staff", "--json").json()["staff"] as? [[String: Any]])
        #expect(staff.count == 3 && Set(staff[0].keys) == ["id", "name", "role", "removed"])
        #expect(try ShelterProcess.login(replica, as: "Mette").status == 0)

        let admitted = try shelter("admit", "--anonymous", "--alias", "Rose", "--municipality", "Roskilde", "--room", "1", "--at", "2026-03-25T10:00", "--json").json()
        let stay = try #require(admitted["stay"] as? String)
        let list = try shelter("notifications", "--pending", "--json").json()
        let notification = try #require((list["notifications"] as? [[String: Any]])?.first)
        #expect(Set(notification.keys) == ["id", "stay", "kind", "municipality", "municipalityCode", "due", "legalDeadline", "sentAt", "overdue"])
        #expect(notification["kind"] as? String == "admission" && notification["legalDeadline"] as? String == "2026-03-30")
        #expect(notification["sentAt"] is NSNull && notification["overdue"] as? Bool == true, "due in March 2026, not sent")
        let id = try #require(notification["id"] as? String)
        let letter = try shelter("notifications", "show", String(id.prefix(8)))
        #expect(letter.status == 0 && letter.stdout.contains("Orientering efter servicelovens § 109") && !letter.stdout.contains("Rose"))
        #expect(try shelter("notifications", "sent", String(id.prefix(8)), "--at", "2026-03-26T09:00:00+01:00").status == 0)
        let sent = try #require((try shelter("notifications", "--json").json()["notifications"] as? [[String: Any]])?.first)
        #expect(sent["sentAt"] as? String == "2026-03-26T08:00:00Z")
        #expect(try shelter("notifications", "--pending", "--json").json()["notifications"].flatMap { $0 as? [Any] }?.isEmpty == true)

        // Leader-only, refused for a social worker with a clear message, and nothing written.
        #expect(try ShelterProcess.login(replica, as: "Jonas").status == 0)
        let refused = try shelter("decide", stay, "--eligible")
        #expect(refused.status == 1 && refused.stderr.contains("only a leader may record an eligibility decision"))
        #expect(try ShelterProcess.login(replica, as: "Mette").status == 0)
        let missingReason = try shelter("decide", stay, "--not-eligible")
        #expect(missingReason.status != 0 && missingReason.stderr.contains("--reason"))
        #expect(try shelter("decide", stay, "--eligible").status == 0)

        #expect(try shelter("rates", "set", "2026", "3100").status == 0)
        let billing = try shelter("billing", "--month", "2026-03", "--json").json()
        #expect(Set(billing.keys) == ["month", "rate", "municipalities", "days", "amount", "selfPayment"])
        let roskilde = try #require((billing["municipalities"] as? [[String: Any]])?.first)
        #expect(Set(roskilde.keys) == ["municipality", "municipalityCode", "stays", "days", "rate", "amount", "selfPayment"])
        #expect(roskilde["municipalityCode"] as? Int == 265 && billing["amount"] as? Int == 7 * 3100)
        #expect(roskilde["days"] as? Int == 7 && roskilde["amount"] as? Int == 7 * 3100, "25–31 March")
        #expect(((roskilde["stays"] as? [[String: Any]])?.first?["display"] as? String) == "anonymous")
        let noRate = try shelter("billing", "--month", "2031-01")
        #expect(noRate.status == 1 && noRate.stderr.contains("rates set 2031"))
        #expect(try shelter("billing", "--month", "March").status != 0)

        let moveOut = try shelter("move-out", stay, "--reason", "vold mod en anden beboer", "--house-rules", "--at", "2026-04-02T10:00")
        #expect(moveOut.status == 0)
        let decisions = try #require(try shelter("decisions", "--stay", String(stay.prefix(8)), "--json").json()["decisions"] as? [[String: Any]])
        #expect(decisions.count == 2 && Set(decisions[0].keys) == ["id", "stay", "kind", "outcome", "reason", "referTo", "houseRules", "decidedOn", "status", "appealable", "complaints"])
        let expulsion = try #require(decisions.first { $0["kind"] as? String == "moveOut" }?["id"] as? String)
        #expect(decisions.first { $0["kind"] as? String == "moveOut" }?["appealable"] as? Bool == false)
        let appeal = try shelter("complaint", "add", String(expulsion.prefix(8)), "--written", "uenig")
        #expect(appeal.status == 1 && appeal.stderr.contains("cannot be appealed"), "\(appeal)")
        #expect(try shelter("complaints", "--json").json()["complaints"].flatMap { $0 as? [Any] }?.isEmpty == true)

        #expect(try shelter("meetings", "configure", "--first", "2026-11-02").status == 0)
        let meetings = try #require(try shelter("meetings", "--json", "--count", "2").json()["meetings"] as? [[String: Any]])
        #expect(meetings.count == 2 && Set(meetings[0].keys) == ["date", "held", "scheduled", "notes"])
        let due = try shelter("due", "--json").json()
        #expect(due["due"] is [Any])
        #expect(try shelter("meetings", "held", "not-a-date").status != 0)

        // Mette changes her passphrase: the old one no longer opens her keys, the new one does.
        let newFile = dir.file("new-passphrase")
        FileManager.default.createFile(atPath: newFile, contents: Data("a brand new passphrase\n".utf8))
        #expect(try shelter("passwd", "--passphrase-file", ShelterProcess.passphraseFile, "--new-passphrase-file", newFile).status == 0)
        let old = try ShelterProcess.login(replica, as: "Mette")
        #expect(old.status == 1 && old.stderr.contains("wrong passphrase"), "\(old)")
        #expect(try shelter("login", "Mette", "--passphrase-file", newFile).status == 0)
        #expect(try shelter("verify").status == 0)
    }
}
