import ClientKit
import Foundation
import NIOCore
import NIOEmbedded
import Server
import ShelterDomain
import SyncCore
import SyncTransport
import Testing
import TestSupport

/// Frames and messages from a hostile or broken peer: a clear protocol error, never a crash, a
/// hang or a partial write.
@Suite struct HostileInputTests {
    static func sampleMessages(_ rng: inout SeededRandom) -> [WireMessage] {
        let change = CellChange(table: "residents", rowID: "abcdef0123456789", values: ["phone": .text("+45 1234"), "interpreter": .integer(1), "x": .real(2.5), "n": .null],
                                dot: Dot(replica: .random(), counter: UInt64.random(in: 1...1000, using: &rng)), hlc: HLC(rawValue: 12345),
                                author: "mette", context: VersionVector([.random(): 3]))
        let hash = LogHash.of(change)
        return [
            .hello(.init(schemaVersion: 3, replicaID: .random(), clientVersion: "shelter/0.3.0", hlcNow: HLC(rawValue: 99), counter: 7,
                         acknowledged: 5, cursor: 40, checkpoints: [.init(position: 40, hash: hash), .init(position: 31, hash: .genesis)])),
            .welcome(.init(server: .random(), head: 42, acknowledged: 9, maxBatch: 1000)),
            .welcome(.init(server: .random(), head: 42, acknowledged: 9, maxBatch: 1000, resume: 31, holdings: VersionVector([.random(): 12]))),
            .error(code: "revoked", message: "no"),
            .push([change, change]),
            .pushAck(upToCounter: 9, rejected: [.init(counter: 3, code: "anonymity", reason: "r")]),
            .pull(cursor: 17, limit: 100),
            .changes([.init(sequence: 5, change: change)], nextCursor: 5, nextHash: hash, more: true),
            .changes([], nextCursor: 0, nextHash: nil, more: false),
            .report(cursor: 5, outbox: 0, databaseBytes: 4096, lastError: "timeout"),
            .bye,
            .recover([change]),
            .recoverAck(merged: 1, rejected: [.init(dot: change.dot, code: "anonymity", reason: "r")]),
        ]
    }

    @Test func everyMessageDecoderUnderMutation() {
        let seed = SeededRandom.seed(from: "FUZZ_SEED", default: 20_261_126)
        let iterations = ProcessInfo.processInfo.environment["FUZZ_ITERATIONS"].flatMap(Int.init) ?? 30_000
        var rng = SeededRandom(seed: seed)
        let samples = Self.sampleMessages(&rng)
        var decoded = 0, refused = 0
        for message in samples {
            // Valid messages round-trip.
            #expect((try? WireMessage.decode(message.encoded())) == message, "seed \(seed): \(message.name) does not round-trip")
            // Every truncation is refused.
            let bytes = message.encoded()
            for cut in 0..<bytes.count {
                #expect(throws: BinaryReader.Error.self, "seed \(seed): \(message.name) cut at \(cut)") { try WireMessage.decode(Array(bytes.prefix(cut))) }
            }
        }
        for _ in 0..<iterations {
            var bytes: [UInt8]
            if rng.chance(0.2) {
                // Pure noise, including wrong message types.
                bytes = (0..<Int.random(in: 0...64, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            } else {
                // A valid message with a few bytes changed, inserted or removed (wrong field types, lengths).
                bytes = samples.randomElement(using: &rng)!.encoded()
                for _ in 0..<Int.random(in: 1...4, using: &rng) {
                    switch Int.random(in: 0..<3, using: &rng) {
                    case 0 where !bytes.isEmpty: bytes[Int.random(in: 0..<bytes.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
                    case 1: bytes.insert(UInt8.random(in: 0...255, using: &rng), at: Int.random(in: 0...bytes.count, using: &rng))
                    default: if !bytes.isEmpty { bytes.remove(at: Int.random(in: 0..<bytes.count, using: &rng)) }
                    }
                }
            }
            do {
                let message = try WireMessage.decode(bytes)
                decoded += 1
                // Whatever decodes must encode back to something that decodes to the same message.
                #expect((try? WireMessage.decode(message.encoded())) == message, "seed \(seed)")
            } catch {
                refused += 1
            }
        }
        print("fuzz: seed \(seed), \(iterations) inputs, \(decoded) decoded, \(refused) refused cleanly")
        #expect(refused > iterations / 2, "seed \(seed): most mutations must be refused")
    }

    @Test func theFrameDecoderUnderRandomChunksAndLengths() throws {
        let seed = SeededRandom.seed(from: "FUZZ_SEED", default: 7)
        var rng = SeededRandom(seed: seed)
        let samples = Self.sampleMessages(&rng)
        for _ in 0..<500 {
            let channel = EmbeddedChannel()
            try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(WireFrameDecoder(maximumFrameSize: 4096)))
            var stream: [UInt8] = []
            for _ in 0..<Int.random(in: 1...5, using: &rng) {
                let body = samples.randomElement(using: &rng)!.encoded()
                var length = UInt32(body.count)
                if rng.chance(0.1) { length = UInt32.random(in: 0...UInt32.max, using: &rng) }  // lengths up to 2^32 − 1
                stream += withUnsafeBytes(of: length.bigEndian) { Array($0) } + body
            }
            var failed = false
            var offset = 0
            while offset < stream.count && !failed {
                let size = Int.random(in: 1...16, using: &rng)
                let chunk = Array(stream[offset..<min(stream.count, offset + size)])
                offset += size
                do { try channel.writeInbound(ByteBuffer(bytes: chunk)) } catch is WireError { failed = true }
            }
            while let _ = try? channel.readInbound(as: WireMessage.self) {}
            _ = try? channel.finish()
        }
    }

    @Test(.timeLimit(.minutes(2))) func aLiveServerSurvivesGarbageAndSilentCrowds() async throws {
        // Silent clients are cut after 10 s without a message; a genuine session on a loaded
        // machine (the whole suite in parallel on 2 cores, 40 TLS handshakes at once, other tests
        // deriving scrypt keys) must not come near that. At 3 s it once did, in CI: its handshake
        // and hello waited behind the crowd's, and the server cut it.
        let server = try await TestServer.start(idleTimeout: .seconds(10))
        defer { server.remove() }
        let enrollment = try server.directory.enroll(name: "mallory", bundlePath: server.folder.file("mallory.bundle"))
        let bundle = try WorkstationBundle(pem: String(decoding: FileManager.default.contents(atPath: enrollment.bundlePath)!, as: UTF8.self), source: "b")
        let tls = try TLSSettings.client(identity: bundle.identity, ca: bundle.caCertificate)
        let genuine = try await server.workstation("reception", firstSync: false)
        var rng = SeededRandom(seed: SeededRandom.seed(from: "FUZZ_SEED", default: 11))
        let samples = Self.sampleMessages(&rng)

        // Garbage over a genuine TLS session: noise, mutated frames, an oversized announcement.
        for round in 0..<20 {
            var body = samples.randomElement(using: &rng)!.encoded()
            if !body.isEmpty { body[Int.random(in: 0..<body.count, using: &rng)] ^= 0xFF }
            var frame = withUnsafeBytes(of: UInt32(body.count).bigEndian) { Array($0) } + body
            if round % 5 == 0 { frame = [0xFF, 0xFF, 0xFF, 0xFF] + Array(repeating: 0x41, count: 16) }
            if round % 7 == 0 { frame = (0..<40).map { _ in UInt8.random(in: 0...255, using: &rng) } }
            let outcome = await RawClient.raw(port: server.port, tls: tls, bytes: frame)
            if case .answered(.welcome) = outcome { Issue.record("garbage was welcomed") }
        }
        // A crowd of clients that open TLS and then say nothing, while a genuine workstation syncs.
        let crowd = (0..<40).map { _ in Task { await RawClient.raw(port: server.port, tls: tls, bytes: []) } }
        let report = try await genuine.sync()
        let capacity = try genuine.roomBoard().capacity
        #expect(report.snapshotRows > 0 && capacity == 9, "the genuine workstation is served while the crowd waits")
        // The silent ones are timed out and their slots freed.
        for member in crowd {
            if case .answered = await member.value { Issue.record("a silent client got an answer") }
        }
        try genuine.admit(Admission(name: "Anna", municipality: "Køge"), by: staff("s"))
        #expect(try await genuine.sync().pushed == 3)
        #expect(try ReplicaInspector(path: server.directory.storePath).integrityCheck() == ["ok"])
        try await server.stop()
    }
}
