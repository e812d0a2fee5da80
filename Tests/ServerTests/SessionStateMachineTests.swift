import NIOCore
import NIOEmbedded
import Server
import SyncCore
import Testing

@Suite struct SessionStateMachineTests {
    let hello = WireMessage.Hello(schemaVersion: 2, replicaID: .random(), clientVersion: "t", hlcNow: .zero, counter: 0)

    @Test func theOrderOfASession() {
        var machine = SyncSessionStateMachine(maximumBatch: 10)
        #expect(machine.receive(.hello(hello)) == .greet(hello))
        machine.established()
        #expect(machine.receive(.push([])) == .merge([]))
        #expect(machine.receive(.pull(cursor: 5, limit: 0)) == .pull(cursor: 5, limit: 10))
        #expect(machine.receive(.pull(cursor: 5, limit: 1000)) == .pull(cursor: 5, limit: 10))
        #expect(machine.receive(.report(cursor: 3, outbox: 0, databaseBytes: 1, lastError: nil)) == .report(cursor: 3, outbox: 0, databaseBytes: 1, lastError: nil))
        #expect(machine.state == .reported)
    }

    @Test(arguments: [WireMessage.push([]), .pull(cursor: 0, limit: 1), .bye, .report(cursor: 0, outbox: 0, databaseBytes: 0, lastError: nil)])
    func nothingBeforeHello(_ message: WireMessage) {
        var machine = SyncSessionStateMachine(maximumBatch: 10)
        guard case .fail(let code, _) = machine.receive(message) else {
            Issue.record("\(message.name) before hello was accepted")
            return
        }
        #expect(code == .protocolViolation)
        #expect(machine.state == .closed)
    }

    @Test func recoveryOnlyAfterAWelcomeThatAskedForIt() {
        let change = CellChange(table: "t", rowID: "r", values: [:], dot: Dot(replica: .random(), counter: 1), hlc: .zero, author: "a", context: .init())
        var calm = SyncSessionStateMachine(maximumBatch: 10)
        _ = calm.receive(.hello(hello))
        calm.established()
        guard case .fail(.protocolViolation, _) = calm.receive(.recover([change])) else {
            Issue.record("recover was accepted without holdings")
            return
        }
        var healing = SyncSessionStateMachine(maximumBatch: 1)
        _ = healing.receive(.hello(hello))
        healing.established(healing: true)
        #expect(healing.receive(.recover([change])) == .recover([change]))
        guard case .fail = healing.receive(.recover([change, change])) else {
            Issue.record("an oversized recovery batch was accepted")
            return
        }
    }

    @Test func aReportWithANegativeCursorIsRefused() {
        var machine = SyncSessionStateMachine(maximumBatch: 10)
        _ = machine.receive(.hello(hello))
        machine.established()
        guard case .fail(.protocolViolation, _) = machine.receive(.report(cursor: .min, outbox: 0, databaseBytes: 0, lastError: nil)) else {
            Issue.record("a negative report cursor was accepted (it overflowed the admin view's lag)")
            return
        }
    }

    @Test func batchesAndCursorsAreBounded() {
        var machine = SyncSessionStateMachine(maximumBatch: 1)
        _ = machine.receive(.hello(hello))
        machine.established()
        let change = CellChange(table: "t", rowID: "r", values: [:], dot: Dot(replica: .random(), counter: 1), hlc: .zero, author: "a", context: .init())
        guard case .fail = machine.receive(.push([change, change])) else {
            Issue.record("an oversized batch was accepted")
            return
        }
        var other = SyncSessionStateMachine(maximumBatch: 1)
        _ = other.receive(.hello(hello))
        other.established()
        guard case .fail = other.receive(.pull(cursor: -1, limit: 1)) else {
            Issue.record("a negative cursor was accepted")
            return
        }
        var third = SyncSessionStateMachine(maximumBatch: 1)
        _ = third.receive(.hello(hello))
        third.established()
        guard case .fail = third.receive(.hello(hello)) else {
            Issue.record("a second hello was accepted")
            return
        }
    }
}

@Suite struct FramingTests {
    @Test func framesRoundTripAndSplitAnywhere() throws {
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(WireFrameDecoder()))
        let messages: [WireMessage] = [
            .hello(.init(schemaVersion: 2, replicaID: .random(), clientVersion: "x", hlcNow: HLC(rawValue: 77), counter: 3)),
            .pull(cursor: 12, limit: 100), .bye, .error(code: "c", message: "m"),
        ]
        var bytes: [UInt8] = []
        for message in messages {
            let body = message.encoded()
            bytes += withUnsafeBytes(of: UInt32(body.count).bigEndian) { Array($0) } + body
        }
        // One byte at a time: the decoder waits for whole frames.
        for byte in bytes { try channel.writeInbound(ByteBuffer(bytes: [byte])) }
        var decoded: [WireMessage] = []
        while let message = try channel.readInbound(as: WireMessage.self) { decoded.append(message) }
        #expect(decoded == messages)
        _ = try channel.finish()
    }

    @Test func anOversizedFrameIsRefusedBeforeItIsBuffered() throws {
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(WireFrameDecoder(maximumFrameSize: 1024)))
        // Announces 4 GiB − 1 and sends 4 bytes of it.
        #expect(throws: WireError.self) { try channel.writeInbound(ByteBuffer(bytes: [0xFF, 0xFF, 0xFF, 0xFF, 1, 2, 3, 4])) }
        _ = try? channel.finish()
    }

    @Test func aMalformedMessageIsAProtocolError() throws {
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(WireFrameDecoder()))
        #expect(throws: WireError.self) { try channel.writeInbound(ByteBuffer(bytes: [0, 0, 0, 2, 42, 0])) }
        _ = try? channel.finish()
    }
}
