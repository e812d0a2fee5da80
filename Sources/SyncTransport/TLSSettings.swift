import NIOSSL
import SwiftASN1
import X509

/// TLS for the sync port: TLS 1.3 only, both sides authenticated by the shelter CA and nothing else.
public enum TLSSettings {
    /// The server side: presents the server certificate, requires a client certificate signed by the CA.
    public static func server(identity: Identity, ca: Certificate) throws -> TLSConfiguration {
        var configuration = TLSConfiguration.makeServerConfigurationWithMTLS(
            certificateChain: [.certificate(try nio(identity.certificate))],
            privateKey: .privateKey(try nio(identity.privateKey)),
            trustRoots: .certificates([try nio(ca)]))
        configuration.minimumTLSVersion = .tlsv13
        configuration.certificateVerification = .noHostnameVerification
        return configuration
    }

    /// The workstation side: presents its certificate, trusts only the shelter CA and checks the
    /// server's name against `HOST` of `--server`.
    public static func client(identity: Identity, ca: Certificate) throws -> TLSConfiguration {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.minimumTLSVersion = .tlsv13
        configuration.certificateVerification = .fullVerification
        configuration.trustRoots = .certificates([try nio(ca)])
        configuration.certificateChain = [.certificate(try nio(identity.certificate))]
        configuration.privateKey = .privateKey(try nio(identity.privateKey))
        return configuration
    }

    /// For looking at a server's certificate after a refused handshake (to say why in plain words):
    /// the workstation's own certificate, and no check of the server's. Never used to sync.
    public static func probe(identity: Identity) throws -> TLSConfiguration {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.minimumTLSVersion = .tlsv13
        configuration.certificateVerification = .none
        configuration.certificateChain = [.certificate(try nio(identity.certificate))]
        configuration.privateKey = .privateKey(try nio(identity.privateKey))
        return configuration
    }

    public static func nio(_ certificate: Certificate) throws -> NIOSSLCertificate {
        var serializer = DER.Serializer()
        try serializer.serialize(certificate)
        return try NIOSSLCertificate(bytes: serializer.serializedBytes, format: .der)
    }

    public static func nio(_ key: Certificate.PrivateKey) throws -> NIOSSLPrivateKey {
        try NIOSSLPrivateKey(bytes: Array(key.serializeAsPEM().pemString.utf8), format: .pem)
    }

    /// The swift-certificates view of a certificate NIOSSL received.
    public static func certificate(_ nio: NIOSSLCertificate) throws -> Certificate {
        try Certificate(derEncoded: nio.toDERBytes())
    }
}
