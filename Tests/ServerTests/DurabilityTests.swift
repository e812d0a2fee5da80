import Foundation
import GRDB
import Server
import Testing
import TestSupport

/// The server acknowledges a push only after it is committed; committed must mean on disk.
@Suite struct DurabilityTests {
    @Test func theServersWriterCommitsWithSynchronousFull() async throws {
        let folder = try TemporaryDirectory("durable")
        defer { folder.remove() }
        _ = try ServerStore.create(at: folder.file("s.db"), rooms: 1)
        let store = try ServerStore.open(at: folder.file("s.db"))
        #expect(try await store.writerSynchronous() == 2, "2 is FULL (GRDB's pool turns it to NORMAL, 1, when it sets up WAL)")
    }
}
