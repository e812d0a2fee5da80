import Foundation
import Testing
import TestSupport

/// Passphrases typed at the terminal, as staff type them: `shelter` runs on a pseudo-terminal that
/// is its controlling terminal; nothing typed is ever echoed, a new one is asked twice, and a wrong
/// one unlocks nothing after a short delay.
@Suite struct TerminalPassphraseTests {
    @Test func passphrasesFromTheTerminalAreNeverEchoed() throws {
        let dir = try TemporaryDirectory("tty")
        defer { dir.remove() }
        let replica = dir.file("night.replica")
        let first = "first passphrase at the desk", second = "second passphrase at the desk"

        // init --leader asks twice; two different answers create nothing.
        let mismatch = try TerminalProcess(["init", "--replica", replica, "--leader", "Mette"])
        try mismatch.waitFor("Passphrase for Mette: ")
        mismatch.type(first)
        try mismatch.waitFor("Again: ")
        mismatch.type(second)
        #expect(try mismatch.exit() == 1)
        #expect(mismatch.text.contains("the two passphrases differ"), "\(mismatch.text)")
        #expect(!FileManager.default.fileExists(atPath: replica), "nothing was created")

        let created = try TerminalProcess(["init", "--replica", replica, "--leader", "Mette"])
        try created.waitFor("Passphrase for Mette: ")
        created.type(first)
        try created.waitFor("Again: ")
        created.type(first)
        #expect(try created.exit() == 0, "\(created.text)")

        // A wrong passphrase: a clear error, after a delay, and no session.
        let started = Date()
        let wrong = try TerminalProcess(["login", "Mette", "--replica", replica])
        try wrong.waitFor("Passphrase for Mette: ")
        wrong.type(second)
        #expect(try wrong.exit() == 1)
        #expect(Date().timeIntervalSince(started) >= 0.9, "a wrong passphrase is answered after a delay")
        #expect(wrong.text.contains("wrong passphrase for mette; nothing was unlocked"), "\(wrong.text)")
        #expect(try ShelterProcess.run(["whoami", "--replica", replica]).status == 1)

        let login = try TerminalProcess(["login", "Mette", "--replica", replica])
        try login.waitFor("Passphrase for Mette: ")
        login.type(first)
        #expect(try login.exit() == 0, "\(login.text)")
        #expect(login.text.contains("Mette (leader) is logged in"), "\(login.text)")

        // passwd: the current one, then the new one twice.
        let passwd = try TerminalProcess(["passwd", "--replica", replica])
        try passwd.waitFor("Current passphrase: ")
        passwd.type(first)
        try passwd.waitFor("New passphrase: ")
        passwd.type(second)
        try passwd.waitFor("Again: ")
        passwd.type(second)
        #expect(try passwd.exit() == 0, "\(passwd.text)")
        #expect(passwd.text.contains("the passphrase of Mette is changed"))
        #expect(try ShelterProcess.run(["logout", "--replica", replica]).status == 0)

        let again = try TerminalProcess(["login", "Mette", "--replica", replica])
        try again.waitFor("Passphrase for Mette: ")
        again.type(second)
        #expect(try again.exit() == 0, "\(again.text)")
        #expect(try ShelterProcess.run(["logout", "--replica", replica]).status == 0)

        for session in [mismatch, created, wrong, login, passwd, again] {
            #expect(!session.text.contains(first) && !session.text.contains(second), "a passphrase was echoed: \(session.text)")
        }
    }
}
