import Crypto
import Foundation
import GRDB
import ShelterDomain
#if canImport(Glibc)
import Glibc
#endif
import SyncCore
import SwiftASN1
import SyncTransport
import X509

/// The server's directory (mode 0700): the shelter CA, the server's key and certificate, and the
/// server store. Key files are 0600.
public struct ServerDirectory: Sendable {
    public let path: String

    public var caCertificatePath: String { path + "/ca.pem" }
    public var caKeyPath: String { path + "/ca-key.pem" }
    public var serverCertificatePath: String { path + "/server.pem" }
    public var serverKeyPath: String { path + "/server-key.pem" }
    public var storePath: String { path + "/server.db" }
    /// Every enrollment and revocation, one line each, appended as they happen: a store restored
    /// from a backup gets back the workstations enrolled and revoked since (a revoked laptop must
    /// not come back with an old backup).
    public var journalPath: String { path + "/registry.journal" }
    /// Held by a running server; `restore` refuses while it is held.
    public var lockPath: String { path + "/server.lock" }

    private init(path: String) { self.path = path }

    /// One workstation identity issued by `enroll`.
    public struct Enrollment: Sendable {
        public var name: String
        public var replicaID: ReplicaID
        public var serial: String
        public var bundlePath: String
    }

    /// Creates the directory with a new CA, the server's certificate and the store with its rooms.
    public static func initialize(at path: String, rooms: Int, hosts: [String] = [], now: Date = Date()) throws -> ServerDirectory {
        guard (1...999).contains(rooms) else { throw ServerError(.directory, t("err.ServerDirectory.0", ("p1", rooms))) }
        let directory = ServerDirectory(path: path)
        let fm = FileManager.default
        var isDirectory: ObjCBool = false
        if fm.fileExists(atPath: path, isDirectory: &isDirectory) {
            guard isDirectory.boolValue else { throw ServerError(.directory, t("err.ServerDirectory.1", ("p1", path))) }
            for file in [directory.storePath, directory.caCertificatePath, directory.caKeyPath] where fm.fileExists(atPath: file) {
                throw ServerError(.directory, t("err.ServerDirectory.2", ("p1", path), ("p2", URL(fileURLWithPath: file).lastPathComponent)))
            }
        } else {
            do { try fm.createDirectory(atPath: path, withIntermediateDirectories: true) } catch {
                throw ServerError(.directory, t("err.ServerDirectory.3", ("p1", path), ("p2", error.localizedDescription)), underlying: error)
            }
        }
        guard chmod(path, 0o700) == 0 else { throw ServerError(.directory, t("err.ServerDirectory.4", ("p1", path))) }
        let created = [directory.caKeyPath, directory.caCertificatePath, directory.serverKeyPath, directory.serverCertificatePath, directory.storePath]
        do {
            let ca = try ShelterCA.create(commonName: "ShelterSync CA \(UUID().uuidString.prefix(8).lowercased())", now: now)
            let server = try ca.issueServer(hosts: hosts, now: now)
            try directory.writeNew(directory.caKeyPath, try ca.identity.privateKeyPEM)
            try directory.writeNew(directory.caCertificatePath, try ca.identity.certificatePEM)
            try directory.writeNew(directory.serverKeyPath, try server.privateKeyPEM)
            try directory.writeNew(directory.serverCertificatePath, try server.certificatePEM)
            let store = try ServerStore.create(at: directory.storePath, rooms: rooms, now: now)
            try store.bind(toCA: try directory.caFingerprint())
            try directory.appendJournal(.run(writer: store.serverID, at: Timestamp.format(now)))
        } catch {
            for file in created + [directory.journalPath] { unlink(file); unlink(file + "-wal"); unlink(file + "-shm") }
            if let error = error as? ServerError { throw error }
            throw ServerError(.directory, t("err.ServerDirectory.5", ("p1", path), ("p2", error)), underlying: error)
        }
        return directory
    }

    /// A directory to restore a store into: it must hold the shelter's certificates (copied from
    /// where the admin keeps them, on a new machine); the store itself may be missing or broken.
    public static func openForRestore(at path: String) throws -> ServerDirectory {
        let directory = ServerDirectory(path: path)
        guard FileManager.default.fileExists(atPath: directory.caCertificatePath), FileManager.default.fileExists(atPath: directory.serverCertificatePath) else {
            throw ServerError(.directory, t("err.ServerDirectory.6", ("p1", path)))
        }
        return directory
    }

    public static func open(at path: String) throws -> ServerDirectory {
        let directory = ServerDirectory(path: path)
        guard FileManager.default.fileExists(atPath: directory.storePath), FileManager.default.fileExists(atPath: directory.caCertificatePath) else {
            throw ServerError(.directory, t("err.ServerDirectory.7", ("p1", path), ("p2", path)))
        }
        return directory
    }

    private func writeNew(_ file: String, _ text: String) throws {
        do { try PrivateFile.create(at: file, contents: Array(text.utf8)) } catch {
            throw ServerError(.directory, t("err.ServerDirectory.8", ("p1", file), ("p2", error)))
        }
    }

    private func read(_ file: String) throws -> String {
        guard let data = FileManager.default.contents(atPath: file) else { throw ServerError(.directory, t("err.ServerDirectory.9", ("p1", file))) }
        return String(decoding: data, as: UTF8.self)
    }

    /// The shelter CA with its private key, read from `keyPath` (default `ca-key.pem` here): needed to
    /// issue certificates, never to run the server.
    public func ca(keyPath: String? = nil) throws -> ShelterCA {
        let keyPath = keyPath ?? caKeyPath
        guard FileManager.default.fileExists(atPath: keyPath) else {
            throw ServerError(.directory, t("err.ServerDirectory.10", ("p1", keyPath)))
        }
        do {
            return ShelterCA(identity: try Identity(certificatePEM: try read(caCertificatePath), privateKeyPEM: try read(keyPath), source: keyPath))
        } catch let error as TransportError {
            throw ServerError(.directory, t("err.ServerDirectory.11", ("p1", error.message), ("p2", keyPath)), underlying: error)
        }
    }

    /// When the server's certificate expires.
    public func serverCertificateExpires() throws -> Date {
        try serverIdentity().certificate.notValidAfter
    }

    /// The CA's certificate alone: what a running server needs to check workstations (the CA's key
    /// is needed only to issue certificates).
    public func caCertificate() throws -> Certificate {
        do {
            return try Certificate(pemEncoded: try read(caCertificatePath))
        } catch let error as ServerError {
            throw error
        } catch {
            throw ServerError(.directory, t("err.ServerDirectory.12", ("p1", caCertificatePath)), underlying: error)
        }
    }

    public func serverIdentity() throws -> Identity {
        do {
            return try Identity(certificatePEM: try read(serverCertificatePath), privateKeyPEM: try read(serverKeyPath), source: serverCertificatePath)
        } catch let error as TransportError {
            let hint = error.message.contains("does not belong") ? " (an interrupted `shelter server certify`? run it again)" : ""
            throw ServerError(.directory, error.message + hint, underlying: error)
        }
    }

    public func store(statementObserver: (@Sendable (String) -> Void)? = nil) throws -> ServerStore {
        try ServerStore.open(at: storePath, statementObserver: statementObserver)
    }

    /// Issues one workstation identity and writes its bundle (0600, never over an existing file).
    public func enroll(name: String, bundlePath: String? = nil, caKeyPath: String? = nil, now: Date = Date()) throws -> Enrollment {
        guard !name.isEmpty, name.count <= 64, name.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "-_.".contains($0)) }) else {
            throw ServerError(.directory, t("err.ServerDirectory.13", ("p1", name)))
        }
        let store = try store()
        let ca = try ca(keyPath: caKeyPath)
        let replicaID = ReplicaID.random()
        let identity = try ca.issueWorkstation(name: name, replicaID: replicaID, now: now)
        let bundle = try WorkstationBundle(identity: identity, caCertificate: ca.certificate)
        let out = bundlePath ?? "\(name).bundle"
        try store.checkNameIsFree(name)
        do { try PrivateFile.create(at: out, contents: Array(try bundle.pem().utf8)) } catch {
            throw ServerError(.directory, error as? PrivateFile.Failure == .exists ? "\(out) already exists; not overwriting it" : "cannot write \(out): \(error)")
        }
        // The journal first: a store restored later must never lack what was done (a crash between
        // the two leaves a journal line that the next `server run` applies).
        do {
            try appendJournal(.enroll(replicaID: replicaID, name: name, serial: identity.serial, at: Timestamp.format(now)))
            try store.enroll(name: name, replicaID: replicaID, serial: identity.serial, expires: identity.certificate.notValidAfter, at: now)
        } catch {
            unlink(out)
            throw error
        }
        return Enrollment(name: name, replicaID: replicaID, serial: identity.serial, bundlePath: out)
    }

    /// Issues a new certificate (a new bundle) for an enrolled workstation: the same name and replica
    /// id, a new key, valid 5 years from `now`. The old certificate keeps working until the new one is
    /// first used, and stops then. The workstation installs it with `shelter renew --bundle FILE`.
    public func renew(name: String, bundlePath: String? = nil, caKeyPath: String? = nil, now: Date = Date()) throws -> Enrollment {
        let store = try store()
        guard let replicaID = try store.replicaID(named: name) else {
            throw ServerError(.unknownName, t("err.ServerDirectory.14", ("p1", name)))
        }
        let ca = try ca(keyPath: caKeyPath)
        let identity = try ca.issueWorkstation(name: name, replicaID: replicaID, now: now)
        let bundle = try WorkstationBundle(identity: identity, caCertificate: ca.certificate)
        let out = bundlePath ?? "\(name).bundle"
        do { try PrivateFile.create(at: out, contents: Array(try bundle.pem().utf8)) } catch {
            throw ServerError(.directory, error as? PrivateFile.Failure == .exists ? "\(out) already exists; not overwriting it" : "cannot write \(out): \(error)")
        }
        do {
            try appendJournal(.renew(replicaID: replicaID, serial: identity.serial, expires: Timestamp.format(identity.certificate.notValidAfter),
                                     at: Timestamp.format(now)))
            _ = try store.renew(name: name, serial: identity.serial, expires: identity.certificate.notValidAfter)
        } catch {
            unlink(out)
            throw error
        }
        return Enrollment(name: name, replicaID: replicaID, serial: identity.serial, bundlePath: out)
    }

    /// Revokes a workstation's certificate, in the registry journal first, then in the store: a
    /// revoked laptop never comes back with a restore.
    @discardableResult
    public func revoke(name: String, at: Date = Date()) throws -> ReplicaID {
        let store = try store()
        guard let replica = try store.replicaID(named: name) else {
            throw ServerError(.unknownName, t("err.ServerDirectory.14", ("p1", name)))
        }
        try appendJournal(.revoke(replicaID: replica, at: Timestamp.format(at)))
        return try store.revoke(name: name, at: at)
    }

    /// The store for a running server: tied to this directory's CA (a store of another shelter is
    /// refused), starting a new run whose writer id is journaled (so a restored store still knows
    /// its earlier runs' ids), with the registry brought up to the journal.
    public func storeForServing(statementObserver: (@Sendable (String) -> Void)? = nil, at: Date = Date()) throws -> ServerStore {
        let store = try store(statementObserver: statementObserver)
        try store.bind(toCA: try caFingerprint())
        try reconcileRegistry()
        let writer = ReplicaID.random()
        try appendJournal(.run(writer: writer, at: Timestamp.format(at)))
        return try store.beginRun(writer: writer, at: at)
    }

    /// SHA-256 of the CA certificate's DER encoding, in hex: what ties a store to its shelter.
    public func caFingerprint() throws -> String {
        var serializer = DER.Serializer()
        do { try serializer.serialize(try caCertificate()) } catch let error as ServerError { throw error } catch {
            throw ServerError(.directory, t("err.ServerDirectory.16", ("p1", caCertificatePath)), underlying: error)
        }
        return SHA256.hash(data: serializer.serializedBytes).map { String(format: "%02x", $0) }.joined()
    }

    // MARK: The registry journal

    func appendJournal(_ entry: RegistryEntry) throws {
        let fd = Glibc.open(journalPath, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw ServerError(.directory, t("err.ServerDirectory.17", ("p1", journalPath), ("p2", String(cString: strerror(errno))))) }
        defer { close(fd) }
        let bytes = Array((entry.line + "\n").utf8)
        let written = bytes.withUnsafeBytes { write(fd, $0.baseAddress!, bytes.count) }
        guard written == bytes.count, fsync(fd) == 0 else {
            throw ServerError(.directory, t("err.ServerDirectory.17", ("p1", journalPath), ("p2", String(cString: strerror(errno)))))
        }
    }

    /// The journal's entries; a line that cannot be read is an error naming the line.
    func journal() throws -> [RegistryEntry] {
        guard let data = FileManager.default.contents(atPath: journalPath) else { return [] }
        var entries: [RegistryEntry] = []
        for (index, line) in String(decoding: data, as: UTF8.self).split(separator: "\n").enumerated() where !line.isEmpty {
            guard let entry = RegistryEntry(line: String(line)) else {
                throw ServerError(.directory, t("err.ServerDirectory.19", ("p1", journalPath), ("p2", index + 1)))
            }
            entries.append(entry)
        }
        return entries
    }

    /// Brings the store's registry up to the journal: enrollments and revocations the store does
    /// not have (it was restored from an older backup) are applied again. A directory without a
    /// journal (made before 0.5) gets one, written from the store. Returns what was applied again.
    @discardableResult
    public func reconcileRegistry() throws -> (enrolled: Int, revoked: Int) {
        let store = try store()
        guard FileManager.default.fileExists(atPath: journalPath) else {
            for entry in try store.registryEntries() { try appendJournal(entry) }
            return (0, 0)
        }
        return try store.apply(try journal())
    }

    // MARK: Lock, backup and restore

    /// An exclusive lock on the directory (`flock`), released when the value goes away or the process ends.
    public final class Lock: Sendable {
        let fd: Int32
        init(fd: Int32) { self.fd = fd }
        deinit { close(fd) }
    }

    /// Takes the directory's lock, or says that a server holds it.
    public func lock() throws -> Lock {
        let fd = Glibc.open(lockPath, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw ServerError(.directory, t("err.ServerDirectory.20", ("p1", lockPath), ("p2", String(cString: strerror(errno))))) }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            close(fd)
            throw ServerError(.directory, t("err.ServerDirectory.21", ("p1", path), ("p2", lockPath)))
        }
        return Lock(fd: fd)
    }

    /// What a restore did.
    public struct Restore: Sendable {
        /// The restored store's log head.
        public var head: Int64
        /// Where the store that was replaced now is (kept, never deleted).
        public var replacedPath: String?
        /// Enrollments and revocations applied again from the registry journal.
        public var reenrolled: Int
        public var revoked: Int
    }

    /// Replaces the store with a backup made by `ServerStore.backup` (or any closed copy of a
    /// store): refuses while the server runs, a file that is not a server store or fails its
    /// integrity check, and another shelter's store. The replaced store is kept beside it; the
    /// registry journal is applied again. Workstations then heal the server at their next sync.
    public func restore(from backup: String, force: Bool = false, now: Date = Date()) throws -> Restore {
        let lock = try lock()
        defer { withExtendedLifetime(lock) {} }
        var runs: Set<String> = []
        for entry in try journal() { if case .run(let writer, _) = entry { runs.insert(writer.description) } }
        var restored = try ServerStore.restore(backup: backup, at: storePath, caFingerprint: try caFingerprint(), knownShelters: runs,
                                               force: force, now: now)
        let applied = try reconcileRegistry()
        restored.reenrolled = applied.enrolled
        restored.revoked = applied.revoked
        return restored
    }

    // MARK: Moving the server

    /// Issues a new server certificate for new names (besides localhost, 127.0.0.1 and ::1), signed
    /// by the shelter CA whose key is at `caKeyPath` (default `ca-key.pem` in the directory), and
    /// puts it in place of the old one. A running server uses it after a restart.
    public func certify(hosts: [String], caKeyPath: String? = nil, now: Date = Date()) throws -> (serial: String, validUntil: String) {
        let ca = try ca(keyPath: caKeyPath)
        for host in hosts where host.isEmpty || host.contains(where: { $0.isWhitespace || $0 == "/" }) {
            throw ServerError(.directory, t("err.ServerDirectory.22", ("p1", host)))
        }
        let server = try ca.issueServer(hosts: hosts, now: now)
        let files = [(serverKeyPath, try server.privateKeyPEM), (serverCertificatePath, try server.certificatePEM)]
        for (file, _) in files { unlink(file + ".new") }
        defer { for (file, _) in files { unlink(file + ".new") } }
        for (file, text) in files { try writeNew(file + ".new", text) }
        for (file, _) in files {
            guard rename(file + ".new", file) == 0 else {
                throw ServerError(.directory, t("err.ServerDirectory.23", ("p1", file), ("p2", String(cString: strerror(errno)))))
            }
        }
        return (server.serial, Timestamp.format(server.certificate.notValidAfter))
    }
}
