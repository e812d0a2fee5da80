import Foundation
import Testing
import TestSupport

/// Erasure reaches every copy: a leader erases a resident on one workstation while another edits
/// her notes offline; after everyone syncs, no file of the server or of any workstation holds her
/// name, CPR number, phone, note, her child's name — nor the ciphertext of any of them or her
/// wrapped key. `verify` still passes everywhere, `history` shows `(erased)` and who erased her,
/// the admin sees erasures pending per workstation until each has synced. Retention lists and
/// erases residents whose last stay ended longer ago than the setting.
@Suite(.serialized) struct ErasureTests {
    @Test(.timeLimit(.minutes(4))) func anErasureReachesEveryCopyAndWinsOverAConcurrentEdit() throws {
        let dir = try TemporaryDirectory("erasure")
        defer { dir.remove() }
        let srv = dir.file("srv")
        @discardableResult
        func shelter(_ arguments: String..., status: Int32 = 0) throws -> ShelterProcess.Result {
            let result = try ShelterProcess.run(arguments)
            #expect(result.status == status, "shelter \(arguments.joined(separator: " ")): \(result)")
            return result
        }
        try shelter("server", "init", "--dir", srv, "--rooms", "9")
        try ShelterProcess.addServerStaff(srv)
        let server = try ServerProcess.start(directory: srv)
        defer { server.stop() }
        let address = "127.0.0.1:\(server.port)"
        var replicas: [String] = []
        for name in ["reception", "office", "night"] {
            try shelter("server", "enroll", "--dir", srv, "--name", name, "--out", dir.file("\(name).bundle"))
            let path = dir.file("\(name).replica")
            try shelter("init", "--replica", path, "--bundle", dir.file("\(name).bundle"), "--server", address)
            try shelter("sync", "--replica", path)
            replicas.append(path)
        }
        let (reception, office, night) = (replicas[0], replicas[1], replicas[2])
        try #require(try ShelterProcess.login(reception).status == 0)

        let name = "Sofie Dobbelt", cpr = "120388-1234", phone = "+45 61 72 83 94", note = "husband drives a blue Volvo"
        let child = "Mikkel Dobbelt", later = "moved her car to the back yard"
        let admitted = try shelter("admit", "--replica", reception, "--name", name, "--cpr", cpr, "--municipality", "Køge",
                                   "--child", child, "--room", "1", "--reason", "violence at home", "--json").json()
        let resident = try #require(admitted["resident"] as? String)
        try shelter("resident", "set", resident, "phone=\(phone)", "notes=\(note)", "--replica", reception)
        let other = try shelter("admit", "--replica", reception, "--name", "Ida Holm", "--municipality", "Roskilde", "--room", "2", "--json").json()
        let otherResident = try #require(other["resident"] as? String)
        for path in [reception, office, night] { try shelter("sync", "--replica", path) }

        // Her ciphertexts and wrapped key, as every copy holds them now.
        let stored = try ReplicaInspector(path: office).rows("""
            SELECT name, cpr, phone, notes, key FROM residents WHERE id = '\(resident)'
            UNION ALL SELECT name, cpr, NULL, NULL, NULL FROM children WHERE resident = '\(resident)'
            UNION ALL SELECT reason, NULL, NULL, NULL, NULL FROM stays WHERE resident = '\(resident)'
            """).flatMap { $0 }.compactMap { $0 }
        #expect(stored.count == 7 && stored.allSatisfy { $0.hasPrefix("ss1:") || $0.hasPrefix("rk1:") }, "\(stored)")
        // The part after the prefix is what only her key opens.
        let ciphertexts = stored.map { String($0.split(separator: ":").last!) }

        // The office edits her note while offline (the server is not told yet) …
        try #require(try ShelterProcess.login(office).status == 0)
        try shelter("resident", "set", resident, "notes=\(later)", "--replica", office)
        let laterCipher = try #require(try ReplicaInspector(path: office).rows("SELECT notes FROM residents WHERE id = '\(resident)'")[0][0])
        #expect(laterCipher.hasPrefix("ss1:") && !stored.contains(laterCipher))
        // … while the leader erases her at the reception: not without confirmation when there is no terminal.
        let unconfirmed = try shelter("erase", resident, "--replica", reception, status: 1)
        #expect(unconfirmed.stderr.contains("--yes"), "\(unconfirmed)")
        #expect(try shelter("resident", "show", resident, "--replica", reception, "--json").json()["name"] as? String == name)
        try shelter("erase", resident, "--yes", "--replica", reception)
        let here = try shelter("resident", "show", resident, "--replica", reception, "--json").json()
        #expect(here["name"] is NSNull && here["cpr"] is NSNull && here["notes"] is NSNull && (here["erasure"] as? [String: Any])?["erasedBy"] as? String == "tester", "\(here)")
        try shelter("sync", "--replica", reception)

        // The admin sees that the office and the night workstation have not erased her yet.
        func pending() throws -> [String: Int] {
            let replicas = try #require(try shelter("server", "replicas", "--dir", srv, "--json").json()["replicas"] as? [[String: Any]])
            return Dictionary(uniqueKeysWithValues: replicas.map { ($0["name"] as! String, $0["erasuresPending"] as! Int) })
        }
        #expect(try pending() == ["reception": 0, "office": 1, "night": 1])

        // The office syncs: its edit reaches the server after the erasure, and is erased there and here.
        try shelter("sync", "--replica", office)
        try shelter("sync", "--replica", night)
        try shelter("sync", "--replica", reception)
        #expect(try pending() == ["reception": 0, "office": 0, "night": 0])
        let shown = try shelter("resident", "show", resident, "--replica", office, "--json").json()
        #expect(shown["name"] is NSNull && shown["notes"] is NSNull && shown["phone"] is NSNull, "\(shown)")
        #expect((shown["stays"] as? [[String: Any]])?.first?["room"] as? Int == 1, "her stay keeps its room: \(shown)")
        let children = try #require(shown["children"] as? [[String: Any]])
        #expect(children.count == 1 && children[0]["name"] is NSNull)
        // The other resident is untouched.
        #expect(try shelter("resident", "show", otherResident, "--replica", office, "--json").json()["name"] as? String == "Ida Holm")

        // The audit: history shows her values as erased, and who erased her and when.
        let history = try shelter("history", resident, "--show-personal", "--replica", office).stdout
        #expect(history.contains("(erased)") && history.contains("erasures") && history.contains("erased_by=tester"), "\(history)")
        #expect(!history.contains(name) && !history.contains(note) && !history.contains(later))
        // Every signature still checks, on every copy and on the server.
        for path in replicas {
            let report = try shelter("verify", "--replica", path, "--json").json()
            #expect((report["invalid"] as? [Any])?.isEmpty == true && report["verified"] as? Int == report["transactions"] as? Int, "\(path): \(report)")
        }
        let serverReport = try shelter("server", "verify", "--dir", srv, "--json").json()
        #expect((serverReport["invalid"] as? [Any])?.isEmpty == true, "\(serverReport)")
        for path in [reception, office] { try shelter("logout", "--replica", path) }
        // The files at rest (a stolen disk, a backup): the server stops as an admin stops it. While it
        // runs it truncates its WAL after each erasing merge, and after each session when readers held
        // old pages at that moment — so a running server's WAL may hold them for a session longer.
        server.stop()

        // Every byte of every file: nothing of hers, not even her ciphertext.
        let secrets = [name, cpr, cpr.replacingOccurrences(of: "-", with: ""), phone, note, later, child, "Dobbelt"] + ciphertexts + [String(laterCipher.split(separator: ":").last!)]
        var searched = 0, otherFound = 0
        let files = try FileManager.default.subpathsOfDirectory(atPath: dir.path)
        let otherCipher = try ReplicaInspector(path: night).rows("SELECT name FROM residents WHERE id = '\(otherResident)'")[0][0]!
        for file in files {
            let path = dir.file(file)
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), !isDirectory.boolValue,
                  let bytes = FileManager.default.contents(atPath: path) else { continue }
            searched += 1
            for secret in secrets {
                #expect(bytes.range(of: Data(secret.utf8)) == nil, "\(file) holds \(secret.prefix(24).debugDescription)")
            }
            // The search does find the other resident's ciphertext, which stays.
            if bytes.range(of: Data(otherCipher.utf8)) != nil { otherFound += 1 }
        }
        #expect(otherFound >= 4, "the search finds the other resident's ciphertext in every replica and the server's store")
        print("searched \(searched) files for \(secrets.count) values of the erased resident: none found")
    }

    @Test(.timeLimit(.minutes(2))) func retentionListsAndErasesResidentsWhoseLastStayEndedLongAgo() throws {
        let dir = try TemporaryDirectory("retention")
        defer { dir.remove() }
        let path = dir.file("r.replica")
        @discardableResult
        func shelter(_ arguments: String..., status: Int32 = 0) throws -> ShelterProcess.Result {
            let result = try ShelterProcess.run(arguments)
            #expect(result.status == status, "shelter \(arguments.joined(separator: " ")): \(result)")
            return result
        }
        try #require(try ShelterProcess.initStandalone(path, rooms: 9).status == 0)
        let old = try shelter("admit", "--replica", path, "--name", "Old Stay", "--municipality", "Køge", "--at", "2021-03-01", "--json").json()
        try shelter("discharge", try #require(old["stay"] as? String), "--reason", "moved out", "--at", "2022-05-01", "--replica", path)
        let recent = try shelter("admit", "--replica", path, "--name", "Recent Stay", "--municipality", "Køge", "--at", "2025-01-10", "--json").json()
        try shelter("discharge", try #require(recent["stay"] as? String), "--reason", "moved out", "--at", "2025-06-01", "--replica", path)
        try shelter("admit", "--replica", path, "--name", "Still Here", "--municipality", "Køge", "--at", "2020-01-01")

        #expect(try shelter("settings", "--replica", path).stdout.contains("retentionYears  3 (default)"))
        var due = try shelter("retention", "--replica", path, "--json").json()
        var listed = try #require(due["residents"] as? [[String: Any]])
        #expect(due["retentionYears"] as? Int == 3 && listed.map { $0["display"] as? String } == ["Old Stay"], "\(due)")
        // Shorter retention: both ended stays are due; the current stay never is.
        try shelter("settings", "set", "retentionYears=1", "--replica", path)
        #expect(try shelter("settings", "set", "retentionYears=0", "--replica", path, status: 1).stderr.contains("retention period"))
        #expect(try shelter("settings", "set", "colour=blue", "--replica", path, status: 1).stderr.contains("no setting colour"))
        due = try shelter("retention", "--replica", path, "--json").json()
        listed = try #require(due["residents"] as? [[String: Any]])
        #expect(due["retentionYears"] as? Int == 1 && listed.map { $0["display"] as? String } == ["Old Stay", "Recent Stay"], "\(due)")
        // What only her key opens, as the file holds it before.
        let oldResident = try #require(old["resident"] as? String)
        let cipher = try #require(try ReplicaInspector(path: path).rows("SELECT name FROM residents WHERE id = '\(oldResident)'")[0][0])
        let erased = try shelter("retention", "erase", "--yes", "--replica", path)
        // A standalone replica pushes nothing: its own log entries are erased at once, every byte of them.
        for file in [path, path + "-wal"] {
            guard let bytes = FileManager.default.contents(atPath: file) else { continue }
            #expect(bytes.range(of: Data(String(cipher.split(separator: ":").last!).utf8)) == nil, "\(file) holds her ciphertext")
        }
        #expect(erased.stdout.contains("2 residents are erased"), "\(erased)")
        #expect(try shelter("retention", "--replica", path).stdout.contains("no resident's last stay ended"))
        let stays = try shelter("stays", "--all", "--replica", path, "--json").json()
        let displays = try #require(stays["stays"] as? [[String: Any]]).map { $0["display"] as? String }
        #expect(displays.sorted { ($0 ?? "") < ($1 ?? "") } == ["(erased)", "(erased)", "Still Here"], "\(stays)")
        #expect(try shelter("resident", "show", try #require(old["resident"] as? String), "--replica", path).stdout.contains("erased"))
        #expect(try shelter("erase", try #require(old["resident"] as? String), "--yes", "--replica", path, status: 1).stderr.contains("erased already"))
        #expect(try shelter("verify", "--replica", path, "--json").json()["invalid"] as? [Any] != nil)
    }
}
