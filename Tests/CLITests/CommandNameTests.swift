import ArgumentParser
import Testing
@testable import CLI

/// Every command names itself: without a name, swift-argument-parser derives one from the type's
/// name (`String(describing:)`), and that cast scans every protocol conformance of the binary — it
/// was a quarter of a `shelter sync` process's CPU time, paid by every command at start.
@Suite struct CommandNameTests {
    @Test func everyCommandNamesItself() {
        var unnamed: [String] = []
        var seen = 0
        func walk(_ command: any ParsableCommand.Type, path: String) {
            seen += 1
            let name = command.configuration.commandName
            if name == nil { unnamed.append(path + " " + String(reflecting: command)) }
            for sub in command.configuration.subcommands { walk(sub, path: path + " " + (name ?? "?")) }
        }
        walk(Shelter.self, path: "")
        #expect(seen > 50, "the command tree was not walked: \(seen) commands")
        #expect(unnamed.isEmpty, "commands without a commandName: \(unnamed)")
    }
}
