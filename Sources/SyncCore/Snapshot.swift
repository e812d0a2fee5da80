import Crypto
import Foundation
import GRDB

/// One row of a synced table as a snapshot carries it (DESIGN-NOTES "Snapshot bootstrap"): its
/// table and id, its version vector, and each written cell with its value and stamp. Columns are
/// named by their codes (hello checks that both sides speak the same schema version).
public struct SnapshotRow: Hashable, Sendable {
    public struct Cell: Hashable, Sendable {
        public var code: Int
        public var value: SyncValue
        public var stamp: CellStamp

        public init(code: Int, value: SyncValue, stamp: CellStamp) {
            self.code = code
            self.value = value
            self.stamp = stamp
        }
    }

    public var table: Int
    public var id: String
    public var versionVector: VersionVector
    /// In column-code order.
    public var cells: [Cell]

    public init(table: Int, id: String, versionVector: VersionVector, cells: [Cell]) {
        self.table = table
        self.id = id
        self.versionVector = versionVector
        self.cells = cells.sorted { $0.code < $1.code }
    }

    /// The canonical encoding: the same bytes on both sides, which the snapshot's digest covers.
    /// A stamp shared by several cells (one change wrote them) is written once.
    public func encode(into writer: inout BinaryWriter) {
        writer.write(varint: UInt64(table))
        writer.write(text: id)
        ChangeCodec.encode(versionVector, into: &writer)
        var stamps: [CellStamp] = []
        var numbers: [Int] = []
        numbers.reserveCapacity(cells.count)
        for cell in cells {
            if let number = stamps.firstIndex(of: cell.stamp) { numbers.append(number) } else {
                numbers.append(stamps.count)
                stamps.append(cell.stamp)
            }
        }
        writer.write(varint: UInt64(stamps.count))
        for stamp in stamps {
            stamp.dot.replica.write(into: &writer)
            writer.write(varint: stamp.dot.counter)
            writer.write(varint: stamp.hlc.rawValue)
        }
        writer.write(varint: UInt64(cells.count))
        for (cell, number) in zip(cells, numbers) {
            writer.write(varint: UInt64(cell.code))
            writer.write(varint: UInt64(number))
            writer.write(value: cell.value)
        }
    }

    public static func decode(from reader: inout BinaryReader) throws(BinaryReader.Error) -> SnapshotRow {
        func small(_ what: String) throws(BinaryReader.Error) -> Int {
            let offset = reader.offset
            let raw = try reader.readUnsigned()
            guard raw < 1 << 20 else { throw BinaryReader.Error(reason: "\(what) \(raw) is out of range", offset: offset) }
            return Int(raw)
        }
        let table = try small("table code")
        let id = try reader.readText()
        let vector = try ChangeCodec.decodeVector(from: &reader)
        let stampCount = try reader.readCount(max: 4096)
        var stamps: [CellStamp] = []
        stamps.reserveCapacity(stampCount)
        for _ in 0..<stampCount {
            let replica = try reader.readReplicaID()
            let counter = try reader.readUnsigned()
            stamps.append(CellStamp(dot: Dot(replica: replica, counter: counter), hlc: try reader.readHLC()))
        }
        let cellCount = try reader.readCount(max: 4096)
        var cells: [Cell] = []
        cells.reserveCapacity(cellCount)
        var last = -1
        for _ in 0..<cellCount {
            let offset = reader.offset
            let code = try small("column code")
            let number = try small("stamp number")
            guard code > last else { throw BinaryReader.Error(reason: "snapshot row cells out of order or repeated", offset: offset) }
            guard number < stamps.count else { throw BinaryReader.Error(reason: "a snapshot cell names stamp \(number) of \(stamps.count)", offset: offset) }
            last = code
            cells.append(Cell(code: code, value: try reader.readValue(), stamp: stamps[number]))
        }
        return SnapshotRow(table: table, id: id, versionVector: vector, cells: cells)
    }
}

/// A change the server's log held when the snapshot was read, by its dot and digest
/// (`LogHash.of`): a replica that took the snapshot knows what the server holds without the changes
/// themselves (a rescue compares an old copy's changes with them).
public struct HeldChange: Hashable, Sendable {
    public var dot: Dot
    public var digest: LogHash

    public init(dot: Dot, digest: LogHash) {
        self.dot = dot
        self.digest = digest
    }

    public func encode(into writer: inout BinaryWriter) {
        dot.replica.write(into: &writer)
        writer.write(varint: dot.counter)
        writer.write(hash: digest)
    }

    public static func decode(from reader: inout BinaryReader) throws(BinaryReader.Error) -> HeldChange {
        let replica = try reader.readReplicaID()
        return HeldChange(dot: Dot(replica: replica, counter: try reader.readUnsigned()), digest: try reader.readHash())
    }

    /// Encoded bytes of one entry at most (a replica id, a counter, a digest).
    public static let maximumBytes = 16 + 10 + 32
}

/// The end of a snapshot: where the server's log stood when it was read, how many rows it holds,
/// their digest, and the server's signature over all of it (`signedBytes`). A workstation applies a
/// snapshot only when the rows it received have this digest and the signature is the server's;
/// `shelter verify` checks the signature again from the record the workstation keeps.
public struct SnapshotSeal: Hashable, Sendable {
    /// The server's log position the snapshot stands at: the workstation pulls on from here.
    public var position: Int64
    /// The server's hash chain at `position` (nil for a log that keeps none).
    public var chain: LogHash?
    public var rows: UInt64
    /// How many changes the log held (`HeldChange`), sent after the rows.
    public var held: UInt64 = 0
    /// SHA-256 over the rows' canonical encodings, then the held changes', in order (`SnapshotDigest`).
    public var digest: LogHash
    /// The highest counter of each replica the snapshot's rows hold.
    public var holdings: VersionVector
    /// The server's wall clock when it read the snapshot (ms since 1970).
    public var takenAt: UInt64
    /// The server's Ed25519 signature of `signedBytes(server:)`.
    public var signature: [UInt8]

    public init(position: Int64, chain: LogHash?, rows: UInt64, held: UInt64 = 0, digest: LogHash, holdings: VersionVector, takenAt: UInt64, signature: [UInt8] = []) {
        self.position = position
        self.chain = chain
        self.rows = rows
        self.held = held
        self.digest = digest
        self.holdings = holdings
        self.takenAt = takenAt
        self.signature = signature
    }

    /// What the server signs: everything above but the signature, and the server's id.
    public func signedBytes(server: ReplicaID) -> [UInt8] {
        var writer = BinaryWriter(capacity: 160)
        writer.write(text: "ShelterSync snapshot 1")
        server.write(into: &writer)
        encodeUnsigned(into: &writer)
        return writer.bytes
    }

    private func encodeUnsigned(into writer: inout BinaryWriter) {
        writer.write(signed: position)
        writer.write(byte: chain == nil ? 0 : 1)
        if let chain { writer.write(hash: chain) }
        writer.write(varint: rows)
        writer.write(varint: held)
        writer.write(hash: digest)
        ChangeCodec.encode(holdings, into: &writer)
        writer.write(varint: takenAt)
    }

    public func encode(into writer: inout BinaryWriter) {
        encodeUnsigned(into: &writer)
        writer.write(varint: UInt64(signature.count))
        writer.write(raw: signature)
    }

    public static func decode(from reader: inout BinaryReader) throws(BinaryReader.Error) -> SnapshotSeal {
        let position = try reader.readSigned()
        let chain = try reader.readFlag() ? try reader.readHash() : nil
        let rows = try reader.readUnsigned()
        let held = try reader.readUnsigned()
        let digest = try reader.readHash()
        let holdings = try ChangeCodec.decodeVector(from: &reader)
        let takenAt = try reader.readUnsigned()
        let count = try reader.readCount(max: 128)
        return SnapshotSeal(position: position, chain: chain, rows: rows, held: held, digest: digest, holdings: holdings, takenAt: takenAt,
                            signature: Array(try reader.readRaw(count: count)))
    }
}

/// The digest of a snapshot's rows, made as they are read or received.
public struct SnapshotDigest {
    private var hasher = SHA256()
    public private(set) var rows: UInt64 = 0
    public private(set) var held: UInt64 = 0
    public private(set) var holdings = VersionVector()

    public init() { hasher.update(data: Array("ShelterSync snapshot rows 1".utf8)) }

    public mutating func add(_ row: SnapshotRow, encoded: [UInt8]) {
        hasher.update(data: encoded)
        rows += 1
        holdings.merge(row.versionVector)
    }

    public mutating func add(_ row: SnapshotRow) {
        var writer = BinaryWriter(capacity: 128)
        row.encode(into: &writer)
        add(row, encoded: writer.bytes)
    }

    /// After every row.
    public mutating func add(_ change: HeldChange) {
        var writer = BinaryWriter(capacity: HeldChange.maximumBytes)
        change.encode(into: &writer)
        hasher.update(data: writer.bytes)
        held += 1
    }

    public func finish() -> LogHash { LogHash(bytes: Array(hasher.finalize()))! }
}

extension SyncStore {
    /// Every row of every synced table with its metadata, in (table code, id) order, as a snapshot
    /// carries them. Call inside one read transaction, so that the rows and the log head agree.
    public func snapshotRows(_ db: Database, _ visit: (SnapshotRow) throws -> Void) throws {
        for table in schema.tables.sorted(by: { $0.code < $1.code }) {
            let columns = table.columns
            let select = try RawStatement(db, """
                SELECT m.id, m.meta\(columns.map { ", t.\($0.name.quotedDatabaseIdentifier)" }.joined())
                FROM sync_rows m JOIN \(table.name.quotedDatabaseIdentifier) t ON t.id = m.id
                WHERE m.tbl = ? ORDER BY m.id
                """)
            select.bind(1, table.code)
            var read: [(id: String, meta: [UInt8], values: [SyncValue?])] = []
            while try select.step() {
                read.append((select.text(0), select.blob(1), (0..<columns.count).map { select.value(Int32($0 + 2)) }))
            }
            // Decoded after the statement is done: decoding a vector may look up a peer.
            for row in read {
                let meta = try decodeMeta(db, row.meta, table: table)
                var cells: [SnapshotRow.Cell] = []
                cells.reserveCapacity(meta.cells.count)
                for (index, column) in columns.enumerated() {
                    guard let stamp = meta.cells[column.name] else { continue }
                    cells.append(.init(code: column.code, value: row.values[index] ?? .null, stamp: stamp))
                }
                try visit(SnapshotRow(table: table.code, id: row.id, versionVector: meta.versionVector, cells: cells))
            }
        }
    }

    /// Every change the log holds up to `position`, by dot and digest, in log order. Call inside the
    /// snapshot's read transaction.
    public func heldChanges(_ db: Database, upTo position: Int64, _ visit: (HeldChange) throws -> Void) throws {
        let select = try RawStatement(db, "SELECT seq, peer, counter, digest FROM sync_log WHERE seq <= ? ORDER BY seq")
        select.bind(1, position)
        var read: [(sequence: Int64, peer: Int64, counter: Int64, digest: [UInt8]?)] = []
        while try select.step() {
            read.append((select.int64(0), select.int64(1), select.int64(2), select.isNull(3) ? nil : select.blob(3)))
        }
        var peers = PeerCache(cache: self.peers, local: true)
        for entry in read {
            // Logged before digests were kept: made from the change (its digest survives erasure).
            let digest = try entry.digest.flatMap { LogHash(bytes: $0) }
                ?? loggedChanges(db, where: "seq = ?", arguments: [.integer(entry.sequence)], order: "seq", limit: 1).first.map { LogHash.of($0.change) }
            guard let digest else { continue }
            try visit(HeldChange(dot: Dot(replica: try peers.id(db, entry.peer), counter: UInt64(entry.counter)), digest: digest))
        }
    }

    /// The digests of `replica`'s changes the server's log held when this replica took its snapshot,
    /// by counter (empty when it took none).
    public func heldDigests(_ db: Database, of replica: ReplicaID) throws -> [UInt64: LogHash] {
        guard let peer = try knownPeerIndex(db, replica),
              let blob = try Data.fetchOne(db, sql: "SELECT digests FROM sync_held WHERE peer = ?", arguments: [peer]) else { return [:] }
        var reader = BinaryReader([UInt8](blob))
        return try corrupt("the digests the server held") { () throws -> [UInt64: LogHash] in
            var digests: [UInt64: LogHash] = [:]
            while !reader.isAtEnd { digests[try reader.readUnsigned()] = try reader.readHash() }
            return digests
        }
    }

    /// Whether this replica may take a snapshot instead of the log: it has pulled nothing and
    /// holds nothing — no row, no change of its own or another's, nothing held back — so the
    /// server's rows are all it will have, and nothing of its own needs an erasure carried out or a
    /// merge. (A workstation writes nothing before its first pull: the shelter key comes with it.)
    public func mayTakeSnapshot(_ db: Database) throws -> Bool {
        let state = try state(db)
        guard state.cursor == 0 else { return false }
        return try Bool.fetchOne(db, sql: """
            SELECT NOT EXISTS (SELECT 1 FROM sync_log) AND NOT EXISTS (SELECT 1 FROM sync_rows)
               AND NOT EXISTS (SELECT 1 FROM sync_pending)
            """) ?? false
    }

    /// Writes a snapshot's rows, as they are, with their metadata; keeps its seal (`snapshot(_:)`).
    /// Call inside a transaction in which `mayTakeSnapshot` said yes (the replica holds nothing, so
    /// nothing is merged: the rows are written as they are), with rows whose digest matches `seal`.
    public func applySnapshot(_ db: Database, rows: [SnapshotRow], held: [HeldChange], seal: SnapshotSeal, server: ReplicaID, clock: inout HybridLogicalClock, wallMilliseconds: UInt64) throws {
        var resolved: [(table: SyncSchema.Table, row: SnapshotRow)] = []
        resolved.reserveCapacity(rows.count)
        for row in rows {
            guard let table = schema.table(code: row.table) else {
                throw SyncError(.corruptData, "the snapshot names table code \(row.table), which this version does not know")
            }
            for cell in row.cells where table.column(code: cell.code) == nil {
                throw SyncError(.corruptData, "the snapshot names column code \(cell.code) of \(table.name), which this version does not know")
            }
            resolved.append((table, row))
        }
        var latest = HLC(rawValue: 0)
        // Peer numbers made in this transaction are not memoised (it may roll back): kept here.
        var numbers: [ReplicaID: Int64] = [:]
        func number(_ replica: ReplicaID) throws -> Int64 {
            if let known = numbers[replica] { return known }
            let made = try peerIndex(db, replica)
            numbers[replica] = made
            return made
        }
        let saveMeta = try RawStatement(db, "INSERT OR REPLACE INTO sync_rows (tbl, id, meta) VALUES (?, ?, ?)")
        for (table, row) in resolved {
            var values: [String: SyncValue] = [:]
            var cells: [String: CellStamp] = [:]
            for cell in row.cells {
                let name = table.column(code: cell.code)!.name
                values[name] = cell.value
                cells[name] = cell.stamp
                if cell.stamp.hlc > latest { latest = cell.stamp.hlc }
            }
            try applyValues(db, table: table, rowID: row.id, values: values)
            saveMeta.bind(1, table.code)
            saveMeta.bind(2, row.id)
            saveMeta.bind(3, blob: try encodeMeta(db, RowMeta(versionVector: row.versionVector, cells: cells), table: table, number: number))
            try saveMeta.execute()
        }
        let own = try state(db).replicaID
        var digests: [ReplicaID: BinaryWriter] = [:]
        for change in held where change.dot.replica != own {
            digests[change.dot.replica, default: BinaryWriter(capacity: 4096)].write(varint: change.dot.counter)
            digests[change.dot.replica]!.write(hash: change.digest)
        }
        for (replica, writer) in digests {
            try db.execute(sql: "INSERT OR REPLACE INTO sync_held (peer, digests) VALUES (?, ?)", arguments: [try number(replica), Data(writer.bytes)])
        }
        clock.receive(latest, wallMilliseconds: wallMilliseconds)
        try db.execute(sql: """
            INSERT OR REPLACE INTO sync_snapshot (id, server, position, chain, rows, held, digest, holdings, taken_at, signature)
            VALUES (1, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """, arguments: [server.description, seal.position, seal.chain.map { Data($0.bytes) }, Int64(clamping: seal.rows), Int64(clamping: seal.held), Data(seal.digest.bytes),
                             Data({ var w = BinaryWriter(); ChangeCodec.encode(seal.holdings, into: &w); return w.bytes }()),
                             Int64(clamping: seal.takenAt), Data(seal.signature)])
        try setCursor(db, seal.position, hash: seal.chain)
    }

    /// The snapshot this replica's pulled history begins with; nil when it pulled the whole log.
    public func snapshot(_ db: Database) throws -> (server: ReplicaID, seal: SnapshotSeal)? {
        guard let row = try Row.fetchOne(db, sql: "SELECT * FROM sync_snapshot WHERE id = 1") else { return nil }
        return try corrupt("the record of the snapshot") { () throws -> (server: ReplicaID, seal: SnapshotSeal) in
            guard let server = ReplicaID(row["server"] as String) else {
                throw SyncError(.corruptData, "the snapshot's server id is not a replica id")
            }
            var holdings = BinaryReader([UInt8](row["holdings"] as Data))
            guard let digest = LogHash(bytes: [UInt8](row["digest"] as Data)) else {
                throw SyncError(.corruptData, "the snapshot's digest is not 32 bytes")
            }
            return (server, SnapshotSeal(position: row["position"], chain: (row["chain"] as Data?).flatMap { LogHash(bytes: [UInt8]($0)) },
                                rows: UInt64(max(0, row["rows"] as Int64)), held: UInt64(max(0, row["held"] as Int64)), digest: digest,
                                holdings: try ChangeCodec.decodeVector(from: &holdings), takenAt: UInt64(max(0, row["taken_at"] as Int64)),
                                signature: [UInt8](row["signature"] as Data)))
        }
    }
}
