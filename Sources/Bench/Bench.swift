import ArgumentParser
import ClientKit
import Foundation
import GRDB
import Server
import ShelterDomain
import SyncCore

/// `shelter-bench`: the cost of sync against plain SQLite, measured in one run on this machine.
/// Build it in release mode: `swift run -c release shelter-bench [--quick] [--json]`.
@main
struct ShelterBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "shelter-bench",
        abstract: "Benchmarks of ShelterSync against plain SQLite (run in release mode).",
        discussion: "Builds its world in a temporary directory and runs on loopback with real TLS; the server is a `shelter server run` child process next to this binary.")

    @Flag(help: "Divide every size by ten (a run well under a minute).") var quick = false
    @Flag(help: "Print one JSON document instead of a table.") var json = false
    @Option(help: "Staff actions for local-write.") var actions = 10_000
    @Option(help: "Cell changes for push and bootstrap.") var changes = 100_000
    @Option(help: "Rows of the large replica for noop-sync.") var noopRows = 100_000
    @Option(help: "Replicas syncing at once in fan-in.") var replicas = 50
    @Option(help: "Changes per replica in fan-in.") var perReplica = 1_000
    @Option(help: "Rows of the replica for erase.") var eraseRows = 100_000
    @Option(help: "The server's --max-batch (changes per pushed or pulled batch; default: the server's).") var maxBatch: Int?
    @Option(help: "Changes per signed transaction in the outboxes pushed (6: an admission's size; 100 before 2026-11-28).") var perTransaction = 6
    @Option(help: "push-growth pushes this many times --changes into the grown store.") var growth = 10
    @Option(help: "bootstrap-edited writes each resident this many times.") var edits = 10
    @Option(help: "Run only these measurements (comma-separated: local-write, fan-in, push, bootstrap-edited, noop-sync, metadata, erase, push-growth); push includes bootstrap, the peer baseline and the signature ceiling, fan-in includes server-rss.")
    var only: String?

    static let groups = ["local-write", "fan-in", "push", "bootstrap-edited", "noop-sync", "metadata", "erase", "push-growth"]

    func validate() throws {
        for name in selected where !Self.groups.contains(name) {
            throw ValidationError("--only: \(name) is not a measurement; choose from \(Self.groups.joined(separator: ", "))")
        }
    }

    var selected: [String] {
        only.map { $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } } ?? Self.groups
    }

    struct Result {
        var name: String
        var value: Double
        var unit: String
        var baseline: Double?
        var ratio: Double?
        /// The same rows applied by SQLite's session extension (`peer-apply`), in rows/s.
        var peer: Double? = nil
        var note: String
        /// How many times faster the peer baseline is (rates only).
        var peerRatio: Double? { peer.map { $0 / value } }
    }

    func run() async throws {
        let scale = quick ? 10 : 1
        try BenchWorld.ensureShelterBinary()
        let world = try BenchWorld(maxBatch: maxBatch, perTransaction: perTransaction)
        defer { world.remove() }
        var results: [Result] = []
        let run = Set(selected)
        if run.contains("local-write") { results += try await world.localWrite(actions: actions / scale) }
        // Fan-in first, while the server's log is small: its replicas must be up to date before the
        // measured sessions, and bootstrapping 50 replicas from a large log is not what it measures.
        let fanIn = run.contains("fan-in") ? try await world.fanIn(replicas: replicas, perReplica: perReplica / scale) : []
        if run.contains("push") { results += try await world.pushAndBootstrap(changes: changes / scale) + world.signatureCeiling() }
        if run.contains("bootstrap-edited") { results += try await world.bootstrapEdited(changes: changes / scale, edits: edits) }
        if run.contains("noop-sync") { results += try await world.noopSync(smallRows: 1_000, largeRows: noopRows / scale) }
        results += fanIn
        if run.contains("metadata") { results += try world.metadata() }
        if run.contains("erase") { results += try await world.erase(rows: eraseRows / scale, history: 100) }
        if run.contains("push-growth") {
            results += try await world.pushGrowth(changes: changes / scale, factor: growth, base: results.first { $0.name == "push" }?.value)
        }
        if json {
            let items = results.map { r -> String in
                func num(_ v: Double?) -> String { v.map { String(format: "%.3f", $0) } ?? "null" }
                return "{\"name\": \"\(r.name)\", \"value\": \(num(r.value)), \"unit\": \"\(r.unit)\", \"baseline\": \(num(r.baseline)), \"ratio\": \(num(r.ratio)), \"peer\": \(num(r.peer)), \"peerRatio\": \(num(r.peerRatio))}"
            }
            print("{\"results\": [\(items.joined(separator: ", "))]}")
        } else {
            print("name                    value          unit            baseline       ratio    peer×    note")
            for r in results {
                let value = String(format: "%.1f", r.value).padding(toLength: 14, withPad: " ", startingAt: 0)
                let baseline = (r.baseline.map { String(format: "%.1f", $0) } ?? "-").padding(toLength: 14, withPad: " ", startingAt: 0)
                let ratio = (r.ratio.map { String(format: "%.2f", $0) } ?? "-").padding(toLength: 8, withPad: " ", startingAt: 0)
                let peer = (r.peerRatio.map { String(format: "%.2f", $0) } ?? "-").padding(toLength: 8, withPad: " ", startingAt: 0)
                print("\(r.name.padding(toLength: 23, withPad: " ", startingAt: 0)) \(value) \(r.unit.padding(toLength: 15, withPad: " ", startingAt: 0)) \(baseline) \(ratio) \(peer) \(r.note)")
            }
        }
    }
}

func seconds(_ body: () throws -> Void) rethrows -> Double {
    let start = ContinuousClock.now
    try body()
    let d = ContinuousClock.now - start
    return Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
}

func seconds(_ body: () async throws -> Void) async rethrows -> Double {
    let start = ContinuousClock.now
    try await body()
    let d = ContinuousClock.now - start
    return Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
}
