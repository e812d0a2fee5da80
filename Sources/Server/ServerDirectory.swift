import Foundation
import SyncCore
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
        guard (1...999).contains(rooms) else { throw ServerError(.directory, "the number of rooms must be between 1 and 999, not \(rooms)") }
        let directory = ServerDirectory(path: path)
        let fm = FileManager.default
        var isDirectory: ObjCBool = false
        if fm.fileExists(atPath: path, isDirectory: &isDirectory) {
            guard isDirectory.boolValue else { throw ServerError(.directory, "\(path) exists and is not a directory") }
            for file in [directory.storePath, directory.caCertificatePath, directory.caKeyPath] where fm.fileExists(atPath: file) {
                throw ServerError(.directory, "\(path) already holds a ShelterSync server (\(URL(fileURLWithPath: file).lastPathComponent)); refusing to overwrite it")
            }
        } else {
            do { try fm.createDirectory(atPath: path, withIntermediateDirectories: true) } catch {
                throw ServerError(.directory, "cannot create \(path): \(error.localizedDescription)", underlying: error)
            }
        }
        guard chmod(path, 0o700) == 0 else { throw ServerError(.directory, "cannot set mode 0700 on \(path)") }
        let created = [directory.caKeyPath, directory.caCertificatePath, directory.serverKeyPath, directory.serverCertificatePath, directory.storePath]
        do {
            let ca = try ShelterCA.create(commonName: "ShelterSync CA \(UUID().uuidString.prefix(8).lowercased())", now: now)
            let server = try ca.issueServer(hosts: hosts, now: now)
            try directory.writeNew(directory.caKeyPath, try ca.identity.privateKeyPEM)
            try directory.writeNew(directory.caCertificatePath, try ca.identity.certificatePEM)
            try directory.writeNew(directory.serverKeyPath, try server.privateKeyPEM)
            try directory.writeNew(directory.serverCertificatePath, try server.certificatePEM)
            _ = try ServerStore.create(at: directory.storePath, rooms: rooms, now: now)
        } catch {
            for file in created { unlink(file); unlink(file + "-wal"); unlink(file + "-shm") }
            if let error = error as? ServerError { throw error }
            throw ServerError(.directory, "cannot initialise the server in \(path): \(error)", underlying: error)
        }
        return directory
    }

    public static func open(at path: String) throws -> ServerDirectory {
        let directory = ServerDirectory(path: path)
        guard FileManager.default.fileExists(atPath: directory.storePath), FileManager.default.fileExists(atPath: directory.caCertificatePath) else {
            throw ServerError(.directory, "\(path) does not hold a ShelterSync server (run `shelter server init --dir \(path)` first)")
        }
        return directory
    }

    private func writeNew(_ file: String, _ text: String) throws {
        do { try PrivateFile.create(at: file, contents: Array(text.utf8)) } catch {
            throw ServerError(.directory, "cannot write \(file): \(error)")
        }
    }

    private func read(_ file: String) throws -> String {
        guard let data = FileManager.default.contents(atPath: file) else { throw ServerError(.directory, "cannot read \(file)") }
        return String(decoding: data, as: UTF8.self)
    }

    public func ca() throws -> ShelterCA {
        do {
            return ShelterCA(identity: try Identity(certificatePEM: try read(caCertificatePath), privateKeyPEM: try read(caKeyPath), source: caCertificatePath))
        } catch let error as TransportError {
            throw ServerError(.directory, error.message, underlying: error)
        }
    }

    public func serverIdentity() throws -> Identity {
        do {
            return try Identity(certificatePEM: try read(serverCertificatePath), privateKeyPEM: try read(serverKeyPath), source: serverCertificatePath)
        } catch let error as TransportError {
            throw ServerError(.directory, error.message, underlying: error)
        }
    }

    public func store(statementObserver: (@Sendable (String) -> Void)? = nil) throws -> ServerStore {
        try ServerStore.open(at: storePath, statementObserver: statementObserver)
    }

    /// Issues one workstation identity and writes its bundle (0600, never over an existing file).
    public func enroll(name: String, bundlePath: String? = nil, now: Date = Date()) throws -> Enrollment {
        guard !name.isEmpty, name.count <= 64, name.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "-_.".contains($0)) }) else {
            throw ServerError(.directory, "workstation name '\(name)' must be 1–64 letters, digits, '-', '_' or '.'")
        }
        let store = try store()
        let ca = try ca()
        let replicaID = ReplicaID.random()
        let identity = try ca.issueWorkstation(name: name, replicaID: replicaID, now: now)
        let bundle = try WorkstationBundle(identity: identity, caCertificate: ca.certificate)
        let out = bundlePath ?? "\(name).bundle"
        try store.checkNameIsFree(name)
        do { try PrivateFile.create(at: out, contents: Array(try bundle.pem().utf8)) } catch {
            throw ServerError(.directory, error as? PrivateFile.Failure == .exists ? "\(out) already exists; not overwriting it" : "cannot write \(out): \(error)")
        }
        do {
            try store.enroll(name: name, replicaID: replicaID, serial: identity.serial, at: now)
        } catch {
            unlink(out)
            throw error
        }
        return Enrollment(name: name, replicaID: replicaID, serial: identity.serial, bundlePath: out)
    }
}
