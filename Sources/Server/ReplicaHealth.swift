import Foundation

/// What the server knows of one enrolled workstation, for the admin (DESIGN §6). Never personal data.
public struct ReplicaHealth: Hashable, Sendable {
    public enum State: String, Hashable, Sendable, CaseIterable {
        /// Synced recently and not far behind.
        case ok
        /// More of the server's log than the threshold has not reached it yet.
        case behind
        /// No successful sync for longer than the threshold.
        case stale
        /// Its certificate was revoked.
        case revoked
        /// Two histories were seen under its replica id (a copied replica file, a second replica
        /// from one bundle, a workstation restored from its own backup): the copy the server
        /// refused keeps its changes until they are rescued under a new identity.
        case forked
        /// Enrolled, never synced.
        case neverSynced = "never-synced"
        /// Its certificate expires within `Thresholds.expiringWithin` (30 days): renew it.
        case expiring
        /// Its last attempt was refused because its clock is too far from the server's.
        case clockSkew
    }

    /// When a workstation counts as behind or stale; set by `shelter server run` options.
    public struct Thresholds: Hashable, Sendable {
        /// `behind` when the cursor lag is above this many log entries.
        public var behindLag: Int64
        /// `stale` when the last successful sync is older than this.
        public var staleAfter: TimeInterval

        /// `expiring` when the certificate expires sooner than this.
        public static let expiringWithin: TimeInterval = 30 * 86_400

        public init(behindLag: Int64 = 500, staleAfter: TimeInterval = 24 * 3600) {
            self.behindLag = behindLag
            self.staleAfter = staleAfter
        }
    }

    public struct LastError: Hashable, Sendable {
        public var code: String
        public var at: String
    }

    public var name: String
    public var replicaID: String
    public var serial: String
    public var enrolledAt: String
    public var firstSeen: String?
    public var lastSeen: String?
    public var lastSync: String?
    public var lastError: LastError?
    /// Server head − the workstation's cursor.
    public var lag: Int64
    /// Unsynced changes it reported at its last sync.
    public var unsynced: Int64
    /// Its changes the server refused.
    public var rejected: Int64
    public var clientVersion: String?
    public var schemaVersion: Int?
    /// Its HLC wall time against the server's at hello, in ms (positive: its clock is ahead).
    public var clockSkewMs: Int64?
    /// Open conflicts one of whose values it wrote.
    public var openConflicts: Int
    /// Erasures in the server's log past its cursor: residents it still holds and has not erased.
    public var erasuresPending: Int = 0
    /// Changes a server that went back in time got back from it (its own, and others' it held).
    public var recovered: Int64
    /// When two histories were first seen under its replica id.
    public var forkedAt: String?
    /// When its certificate expires (nil: not known yet — enrolled before 0.5 and not seen since).
    public var certificateExpires: String?
    public var revoked: Bool
    public var state: State

    /// The state, in order of precedence: revoked, forked, clockSkew, never synced, stale, behind,
    /// expiring, ok.
    public static func state(revoked: Bool, forked: Bool = false, clockRefused: Bool = false, lastSync: Date?, lag: Int64,
                             certificateExpires: Date? = nil, now: Date, thresholds: Thresholds) -> State {
        if revoked { return .revoked }
        if forked { return .forked }
        if clockRefused { return .clockSkew }
        guard let lastSync else { return .neverSynced }
        if now.timeIntervalSince(lastSync) > thresholds.staleAfter { return .stale }
        if lag > thresholds.behindLag { return .behind }
        if let certificateExpires, certificateExpires.timeIntervalSince(now) < Thresholds.expiringWithin { return .expiring }
        return .ok
    }

    /// Seconds since the last successful sync, nil if never.
    public func secondsSinceLastSync(now: Date) -> Double? {
        lastSync.flatMap { try? Date($0, strategy: .iso8601) }.map { now.timeIntervalSince($0) }
    }
}

/// The admin's view of every workstation at one moment.
public struct HealthReport: Hashable, Sendable {
    public var head: Int64
    public var generatedAt: String
    /// When the store was restored from a backup, while workstations may still be giving back
    /// changes it lost (until every one not revoked has synced since); nil otherwise.
    public var restoredAt: String?
    /// When the server's own certificate expires (nil when the reader does not know it).
    public var serverCertificateExpires: String?
    public var replicas: [ReplicaHealth]
}
