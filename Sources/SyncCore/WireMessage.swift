/// The messages of the sync protocol (DESIGN §3), version `WireMessage.protocolVersion`.
///
/// Each frame carries one message: a type byte and a body in the `BinaryWriter` encoding.
public enum WireMessage: Hashable, Sendable {
    /// 2: hello carries the cursor with checkpoints of the server's hash chain, welcome the last
    /// common position, pulled batches the chain at their end; `recover` heals a server that went
    /// back in time. 5: the welcome may end with the server's workstation names
    /// (`Welcome.workstations`), sent only to a hello of version 5 or later. 6: a workstation that
    /// has pulled nothing may ask for a signed snapshot of the server's rows (`snapshot`) instead of
    /// the whole log; the welcome says whether the server gives one (`Welcome.snapshots`).
    public static let protocolVersion: UInt64 = 6
    /// The oldest version a server still answers: a version-4 workstation syncs as before, and its
    /// welcome carries nothing it cannot read.
    public static let oldestProtocolVersion: UInt64 = 4
    /// The most workstation names one welcome carries.
    public static let maximumWorkstations = 10_000
    /// The most checkpoints a hello may carry.
    public static let maximumCheckpoints = 64
    /// The most encoded bytes of changes one pushed, recovered or pulled batch carries (besides its
    /// count limit): half the default frame limit, so a batch of long notes never becomes a frame
    /// the other side refuses. A single change is sent alone whatever its size (one change with
    /// every text at its 64 KiB cap stays far below the frame limit).
    public static let maximumBatchBytes = 4 * 1024 * 1024
    /// The most changes one transaction may hold: the server takes one whole even when it exceeds
    /// the batch limit, and a workstation writes none larger.
    public static let maximumTransaction = 10_000

    /// A batch that never ends inside a transaction (the server checks each one whole): the longest
    /// prefix of `items` that closes every transaction it opens and stays within `limit` changes and
    /// `maximumBatchBytes`; when no such prefix exists, the shortest one that closes them (one
    /// transaction larger than a batch goes alone). `items` should run well past `limit`. Changes
    /// that never reach a seal (written before signatures) go as they come.
    public static func transactionAligned<T>(_ items: [T], limit: Int, change: (T) -> CellChange) -> [T] {
        var open = Set<ReplicaID>()
        var bytes = 0, best = 0
        for (index, item) in items.enumerated() {
            let change = change(item)
            bytes += ChangeCodec.encodedSealedSize(change)
            if change.seal == nil { open.insert(change.dot.replica) } else { open.remove(change.dot.replica) }
            guard open.isEmpty else { continue }
            let count = index + 1
            if count <= limit && bytes <= maximumBatchBytes {
                best = count
            } else {
                if best == 0 { best = count }
                break
            }
        }
        return best == 0 ? Array(items.prefix(max(1, min(limit, items.count)))) : Array(items.prefix(best))
    }

    /// The longest prefix of `items` whose encoded changes stay within `maximumBatchBytes` (at least one).
    public static func byteLimited<T>(_ items: [T], change: (T) -> CellChange) -> [T] {
        var total = 0
        for (index, item) in items.enumerated() {
            total += ChangeCodec.encodedSealedSize(change(item))
            if total > maximumBatchBytes && index > 0 { return Array(items.prefix(index)) }
        }
        return items
    }

    public struct Hello: Hashable, Sendable {
        public var protocolVersion: UInt64
        public var schemaVersion: UInt64
        public var replicaID: ReplicaID
        public var clientVersion: String
        public var hlcNow: HLC
        /// The workstation's wall clock (ms since 1970): the server compares it with its own.
        public var wallNow: UInt64
        /// The replica's highest counter: lets the server see a replica restored from an old copy.
        public var counter: UInt64
        /// Its highest counter a server has processed, as far as it knows: a server that has less
        /// lost changes (it was restored from a backup) and gets them again.
        public var acknowledged: UInt64
        /// The digest of its own change numbered `acknowledged`: a server that holds something else
        /// under that number (a copy got there first after a restore) is told so at once.
        public var acknowledgedDigest: LogHash?
        /// How far it has pulled the server's log.
        public var cursor: Int64
        /// Positions of the server's log it stood at, with the chain hash there, newest first (the
        /// cursor's first when known): the server answers the last one its own chain agrees with.
        public var checkpoints: [Checkpoint]

        public init(protocolVersion: UInt64 = WireMessage.protocolVersion, schemaVersion: UInt64, replicaID: ReplicaID,
                    clientVersion: String, hlcNow: HLC, wallNow: UInt64? = nil, counter: UInt64, acknowledged: UInt64 = 0,
                    acknowledgedDigest: LogHash? = nil, cursor: Int64 = 0, checkpoints: [Checkpoint] = []) {
            self.protocolVersion = protocolVersion
            self.schemaVersion = schemaVersion
            self.replicaID = replicaID
            self.clientVersion = clientVersion
            self.hlcNow = hlcNow
            self.wallNow = wallNow ?? hlcNow.milliseconds
            self.counter = counter
            self.acknowledged = acknowledged
            self.acknowledgedDigest = acknowledgedDigest
            self.cursor = cursor
            self.checkpoints = checkpoints
        }
    }

    public struct Welcome: Hashable, Sendable {
        public var server: ReplicaID
        /// The server log's last position.
        public var head: Int64
        /// The highest counter of this replica the server has processed (merged or rejected).
        public var acknowledged: UInt64
        public var maxBatch: UInt64
        /// The server's wall clock (ms since 1970), and the most it lets a workstation's differ (ms).
        public var serverWallNow: UInt64 = 0
        public var maxClockSkew: UInt64 = HybridLogicalClock.defaultMaximumAheadMilliseconds
        /// The last position both histories share: the hello's cursor when the server's chain
        /// agrees there, else the newest checkpoint that agrees (0 when none does). Less than the
        /// cursor: the server went back in time, and the workstation pulls again from here.
        public var resume: Int64
        /// When the server may lack changes the workstation holds (its history diverged, or it has
        /// processed less of this replica than the replica knows): the highest of the workstation's
        /// own counters in the history both share. The workstation sends back (`recover`) its own
        /// changes above it; the server compares each with what it holds. Nil otherwise.
        public var ownCommon: UInt64?
        /// When, besides, the server is a restored backup: the highest counter it holds of each
        /// replica, so the workstation also gives back other replicas' changes it lacks. Nil otherwise.
        public var holdings: VersionVector?
        /// The server's Ed25519 public key, which signs its own transactions (repairs, conflict
        /// rows, staff the admin made).
        public var serverSigningKey: [UInt8]?
        /// The name of every workstation the server ever enrolled (revoked ones too: their writes
        /// stay in the records), by replica id; an empty name marks one of the server's own writers.
        /// Workstation names are not personal data. Nil when the hello's version is older than 5:
        /// then nothing of it is encoded, and the welcome is byte for byte a version-4 one.
        public var workstations: [ReplicaID: String]?
        /// The server answers `snapshot` (version 6). Encoded after `workstations`, only when true.
        public var snapshots = false

        public init(server: ReplicaID, head: Int64, acknowledged: UInt64, maxBatch: UInt64, resume: Int64 = 0,
                    ownCommon: UInt64? = nil, holdings: VersionVector? = nil) {
            self.server = server
            self.head = head
            self.acknowledged = acknowledged
            self.maxBatch = maxBatch
            self.resume = resume
            self.ownCommon = ownCommon
            self.holdings = holdings
        }
    }

    /// A change the server refused; it stays in the client's outbox, marked rejected.
    public struct Rejection: Hashable, Sendable {
        public var counter: UInt64
        public var code: String
        /// Written for staff; never contains personal data.
        public var reason: String

        public init(counter: UInt64, code: String, reason: String) {
            self.counter = counter
            self.code = code
            self.reason = reason
        }
    }

    /// A change of a recovery batch that the server refused: whose it is, and why.
    public struct RecoveryRejection: Hashable, Sendable {
        public var dot: Dot
        public var code: String
        /// Written for staff; never contains personal data.
        public var reason: String

        public init(dot: Dot, code: String, reason: String) {
            self.dot = dot
            self.code = code
            self.reason = reason
        }
    }

    public struct Logged: Hashable, Sendable {
        public var sequence: Int64
        public var change: CellChange

        public init(sequence: Int64, change: CellChange) {
            self.sequence = sequence
            self.change = change
        }
    }

    case hello(Hello)
    case welcome(Welcome)
    case error(code: String, message: String)
    case push([CellChange])
    case pushAck(upToCounter: UInt64, rejected: [Rejection])
    case pull(cursor: Int64, limit: UInt64)
    /// A pulled batch; `nextHash` is the server's chain at `nextCursor`.
    case changes([Logged], nextCursor: Int64, nextHash: LogHash?, more: Bool)
    /// The session's end: the cursor the client now stands at, its outbox, its file size, its last error code.
    case report(cursor: Int64, outbox: UInt64, databaseBytes: UInt64, lastError: String?)
    case bye
    /// Changes a server that went back in time lacks, sent again by a workstation that holds them:
    /// its own it had acknowledged, and (after a restore) other replicas' it had pulled. Allowed only
    /// after a welcome that carried `ownCommon`; other replicas' only after one that carried `holdings`.
    case recover([CellChange])
    /// The recovery batch is merged and committed: how many changes were new to the server, and
    /// those it refused.
    case recoverAck(merged: UInt64, rejected: [RecoveryRejection])
    /// A workstation that has pulled nothing asks for the server's rows as they stand, in batches
    /// of at most `limit` rows (version 6; only after a welcome with `snapshots`).
    case snapshot(limit: UInt64)
    /// Rows of the snapshot, in (table code, id) order; `snapshotEnd` follows the last batch.
    case snapshotRows([SnapshotRow])
    /// What the server's log held, after the last rows: every change by dot and digest.
    case snapshotHeld([HeldChange])
    /// The snapshot is whole: where it stands in the log, and the server's signature of it.
    case snapshotEnd(SnapshotSeal)

    public var name: String {
        switch self {
        case .hello: "hello"
        case .welcome: "welcome"
        case .error: "error"
        case .push: "push"
        case .pushAck: "pushAck"
        case .pull: "pull"
        case .changes: "changes"
        case .report: "report"
        case .bye: "bye"
        case .recover: "recover"
        case .recoverAck: "recoverAck"
        case .snapshot: "snapshot"
        case .snapshotRows: "snapshotRows"
        case .snapshotHeld: "snapshotHeld"
        case .snapshotEnd: "snapshotEnd"
        }
    }

    // MARK: Encoding

    public func encode(into writer: inout BinaryWriter) {
        switch self {
        case .hello(let hello):
            writer.write(byte: 1)
            writer.write(varint: hello.protocolVersion)
            writer.write(varint: hello.schemaVersion)
            writer.write(raw: hello.replicaID.bytes)
            writer.write(text: hello.clientVersion)
            writer.write(varint: hello.hlcNow.rawValue)
            writer.write(varint: hello.wallNow)
            writer.write(varint: hello.counter)
            writer.write(varint: hello.acknowledged)
            writer.write(byte: hello.acknowledgedDigest == nil ? 0 : 1)
            if let digest = hello.acknowledgedDigest { writer.write(hash: digest) }
            writer.write(signed: hello.cursor)
            writer.write(varint: UInt64(hello.checkpoints.count))
            for checkpoint in hello.checkpoints {
                writer.write(signed: checkpoint.position)
                writer.write(hash: checkpoint.hash)
            }
        case .welcome(let welcome):
            writer.write(byte: 2)
            writer.write(raw: welcome.server.bytes)
            writer.write(signed: welcome.head)
            writer.write(varint: welcome.acknowledged)
            writer.write(varint: welcome.maxBatch)
            writer.write(varint: welcome.serverWallNow)
            writer.write(varint: welcome.maxClockSkew)
            writer.write(signed: welcome.resume)
            writer.write(byte: welcome.ownCommon == nil ? 0 : 1)
            if let ownCommon = welcome.ownCommon { writer.write(varint: ownCommon) }
            writer.write(byte: welcome.holdings == nil ? 0 : 1)
            if let holdings = welcome.holdings { ChangeCodec.encode(holdings, into: &writer) }
            writer.write(byte: welcome.serverSigningKey == nil ? 0 : 1)
            if let key = welcome.serverSigningKey { writer.write(raw: key) }
            // Version 5, at the end and only when present: a version-4 reader never meets it.
            if let workstations = welcome.workstations {
                writer.write(varint: UInt64(workstations.count))
                for (replica, name) in workstations.sorted(by: { $0.key < $1.key }) {
                    replica.write(into: &writer)
                    writer.write(text: name)
                }
                // Version 6, after the names and only when true: a version-5 reader never meets it.
                if welcome.snapshots { writer.write(byte: 1) }
            }
        case .error(let code, let message):
            writer.write(byte: 3)
            writer.write(text: code)
            writer.write(text: message)
        case .push(let changes):
            writer.write(byte: 4)
            writer.write(varint: UInt64(changes.count))
            for change in changes { ChangeCodec.encodeSealed(change, into: &writer) }
        case .pushAck(let upTo, let rejected):
            writer.write(byte: 5)
            writer.write(varint: upTo)
            writer.write(varint: UInt64(rejected.count))
            for rejection in rejected {
                writer.write(varint: rejection.counter)
                writer.write(text: rejection.code)
                writer.write(text: rejection.reason)
            }
        case .pull(let cursor, let limit):
            writer.write(byte: 6)
            writer.write(signed: cursor)
            writer.write(varint: limit)
        case .changes(let batch, let nextCursor, let nextHash, let more):
            writer.write(byte: 7)
            writer.write(varint: UInt64(batch.count))
            for logged in batch {
                writer.write(signed: logged.sequence)
                ChangeCodec.encodeSealed(logged.change, into: &writer)
            }
            writer.write(signed: nextCursor)
            writer.write(byte: nextHash == nil ? 0 : 1)
            if let nextHash { writer.write(hash: nextHash) }
            writer.write(byte: more ? 1 : 0)
        case .report(let cursor, let outbox, let bytes, let lastError):
            writer.write(byte: 8)
            writer.write(signed: cursor)
            writer.write(varint: outbox)
            writer.write(varint: bytes)
            writer.write(byte: lastError == nil ? 0 : 1)
            if let lastError { writer.write(text: lastError) }
        case .bye:
            writer.write(byte: 9)
        case .recover(let changes):
            writer.write(byte: 10)
            writer.write(varint: UInt64(changes.count))
            for change in changes { ChangeCodec.encodeSealed(change, into: &writer) }
        case .recoverAck(let merged, let rejected):
            writer.write(byte: 11)
            writer.write(varint: merged)
            writer.write(varint: UInt64(rejected.count))
            for rejection in rejected {
                rejection.dot.replica.write(into: &writer)
                writer.write(varint: rejection.dot.counter)
                writer.write(text: rejection.code)
                writer.write(text: rejection.reason)
            }
        case .snapshot(let limit):
            writer.write(byte: 12)
            writer.write(varint: limit)
        case .snapshotRows(let rows):
            writer.write(byte: 13)
            writer.write(varint: UInt64(rows.count))
            for row in rows { row.encode(into: &writer) }
        case .snapshotHeld(let held):
            writer.write(byte: 15)
            writer.write(varint: UInt64(held.count))
            for change in held { change.encode(into: &writer) }
        case .snapshotEnd(let seal):
            writer.write(byte: 14)
            seal.encode(into: &writer)
        }
    }

    public func encoded() -> [UInt8] {
        var writer = BinaryWriter(capacity: 64)
        encode(into: &writer)
        return writer.bytes
    }

    /// Decodes one message; any malformed input is a `BinaryReader.Error`, never a trap.
    public static func decode(_ bytes: [UInt8]) throws(BinaryReader.Error) -> WireMessage {
        var reader = BinaryReader(bytes)
        let message: WireMessage
        switch try reader.readByte() {
        case 1:
            var hello = Hello(protocolVersion: try reader.readUnsigned(), schemaVersion: try reader.readUnsigned(),
                              replicaID: try reader.readReplicaID(), clientVersion: try reader.readText(),
                              hlcNow: try reader.readHLC(), wallNow: try reader.readUnsigned(), counter: try reader.readUnsigned())
            hello.acknowledged = try reader.readUnsigned()
            if try reader.readFlag() { hello.acknowledgedDigest = try reader.readHash() }
            hello.cursor = try reader.readSigned()
            let count = try reader.readCount(max: maximumCheckpoints)
            for _ in 0..<count {
                hello.checkpoints.append(Checkpoint(position: try reader.readSigned(), hash: try reader.readHash()))
            }
            message = .hello(hello)
        case 2:
            var welcome = Welcome(server: try reader.readReplicaID(), head: try reader.readSigned(),
                                  acknowledged: try reader.readUnsigned(), maxBatch: try reader.readUnsigned())
            welcome.serverWallNow = try reader.readUnsigned()
            welcome.maxClockSkew = try reader.readUnsigned()
            welcome.resume = try reader.readSigned()
            if try reader.readFlag() { welcome.ownCommon = try reader.readUnsigned() }
            if try reader.readFlag() { welcome.holdings = try ChangeCodec.decodeVector(from: &reader) }
            if try reader.readFlag() { welcome.serverSigningKey = Array(try reader.readRaw(count: 32)) }
            if !reader.isAtEnd {
                let count = try reader.readCount(max: maximumWorkstations)
                var workstations: [ReplicaID: String] = [:]
                for _ in 0..<count {
                    let replica = try reader.readReplicaID()
                    workstations[replica] = try reader.readText()
                }
                welcome.workstations = workstations
                if !reader.isAtEnd { welcome.snapshots = try reader.readFlag() }
            }
            message = .welcome(welcome)
        case 3:
            message = .error(code: try reader.readText(), message: try reader.readText())
        case 4:
            let count = try reader.readCount()
            var changes: [CellChange] = []
            changes.reserveCapacity(count)
            for _ in 0..<count { changes.append(try ChangeCodec.decodeSealed(from: &reader)) }
            message = .push(changes)
        case 5:
            let upTo = try reader.readUnsigned()
            let count = try reader.readCount()
            var rejected: [Rejection] = []
            for _ in 0..<count {
                rejected.append(Rejection(counter: try reader.readUnsigned(), code: try reader.readText(), reason: try reader.readText()))
            }
            message = .pushAck(upToCounter: upTo, rejected: rejected)
        case 6:
            message = .pull(cursor: try reader.readSigned(), limit: try reader.readUnsigned())
        case 7:
            let count = try reader.readCount()
            var batch: [Logged] = []
            batch.reserveCapacity(count)
            for _ in 0..<count {
                let sequence = try reader.readSigned()
                batch.append(Logged(sequence: sequence, change: try ChangeCodec.decodeSealed(from: &reader)))
            }
            let next = try reader.readSigned()
            let nextHash = try reader.readFlag() ? try reader.readHash() : nil
            message = .changes(batch, nextCursor: next, nextHash: nextHash, more: try reader.readFlag())
        case 8:
            let cursor = try reader.readSigned()
            let outbox = try reader.readUnsigned()
            let bytes = try reader.readUnsigned()
            let hasError = try reader.readByte()
            guard hasError <= 1 else { throw BinaryReader.Error(reason: "flag byte \(hasError) is not 0 or 1", offset: reader.offset - 1) }
            message = .report(cursor: cursor, outbox: outbox, databaseBytes: bytes, lastError: hasError == 1 ? try reader.readText() : nil)
        case 9:
            message = .bye
        case 10:
            let count = try reader.readCount()
            var changes: [CellChange] = []
            changes.reserveCapacity(count)
            for _ in 0..<count { changes.append(try ChangeCodec.decodeSealed(from: &reader)) }
            message = .recover(changes)
        case 11:
            let merged = try reader.readUnsigned()
            let count = try reader.readCount()
            var rejected: [RecoveryRejection] = []
            for _ in 0..<count {
                let dot = Dot(replica: try reader.readReplicaID(), counter: try reader.readUnsigned())
                rejected.append(RecoveryRejection(dot: dot, code: try reader.readText(), reason: try reader.readText()))
            }
            message = .recoverAck(merged: merged, rejected: rejected)
        case 12:
            message = .snapshot(limit: try reader.readUnsigned())
        case 13:
            let count = try reader.readCount()
            var rows: [SnapshotRow] = []
            rows.reserveCapacity(min(count, 65_536))
            for _ in 0..<count { rows.append(try SnapshotRow.decode(from: &reader)) }
            message = .snapshotRows(rows)
        case 15:
            let count = try reader.readCount()
            var held: [HeldChange] = []
            held.reserveCapacity(min(count, 1 << 17))
            for _ in 0..<count { held.append(try HeldChange.decode(from: &reader)) }
            message = .snapshotHeld(held)
        case 14:
            message = .snapshotEnd(try SnapshotSeal.decode(from: &reader))
        case let type:
            throw BinaryReader.Error(reason: "unknown message type \(type)", offset: 0)
        }
        guard reader.isAtEnd else { throw BinaryReader.Error(reason: "\(reader.remaining) trailing bytes after \(message.name)", offset: reader.offset) }
        return message
    }
}
