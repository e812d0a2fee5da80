import ShelterDomain
import SyncCore

/// The central sync server. Its TLS listener, sessions and merge arrive with the sync issue; for now
/// it only names the schema it will serve.
public enum SyncServer {
    /// The schema version of the records this server merges.
    public static let schemaVersion = ShelterSchema.version
}
