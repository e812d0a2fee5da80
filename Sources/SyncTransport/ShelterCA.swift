import Crypto
import Foundation
import SwiftASN1
import SyncCore
import X509

/// Why a certificate, key or bundle could not be made or used. The message says what and where.
public struct TransportError: Error, CustomStringConvertible, @unchecked Sendable {
    // @unchecked: `underlying` is only read for display.
    public var message: String
    public var underlying: (any Error)?

    public init(_ message: String, underlying: (any Error)? = nil) {
        self.message = message
        self.underlying = underlying
    }

    public var description: String { message }
}

/// A certificate with its private key.
public struct Identity: @unchecked Sendable {
    // @unchecked: both are immutable values; `Certificate.PrivateKey` is not marked Sendable on all platforms.
    public let certificate: Certificate
    public let privateKey: Certificate.PrivateKey

    public init(certificate: Certificate, privateKey: Certificate.PrivateKey) {
        self.certificate = certificate
        self.privateKey = privateKey
    }

    /// The serial number as lower-case hex.
    public var serial: String { certificate.serialNumber.hex }

    public var certificatePEM: String { get throws { try certificate.serializeAsPEM().pemString } }
    public var privateKeyPEM: String { get throws { try privateKey.serializeAsPEM().pemString } }
}

extension Certificate.SerialNumber {
    public var hex: String { bytes.map { String(format: "%02x", $0) }.joined() }
}

extension Certificate {
    /// The replica id a workstation certificate carries, as the URI `urn:uuid:<id>` in its
    /// subject alternative names.
    public var replicaID: ReplicaID? {
        guard let names = try? extensions.subjectAlternativeNames else { return nil }
        for name in names {
            if case .uniformResourceIdentifier(let uri) = name, uri.hasPrefix("urn:uuid:") {
                return ReplicaID(String(uri.dropFirst("urn:uuid:".count)))
            }
        }
        return nil
    }

    /// The workstation name (the subject's common name).
    public var workstationName: String? {
        for rdn in subject {
            for attribute in rdn where attribute.type == .RDNAttributeType.commonName {
                return String(attribute.value) ?? attribute.value.description
            }
        }
        return nil
    }
}

/// The shelter's own certificate authority (ECDSA P-256): it signs the server's certificate and one
/// certificate per enrolled workstation. Made in Swift; no `openssl` command is needed.
public struct ShelterCA: Sendable {
    public let identity: Identity

    public var certificate: Certificate { identity.certificate }

    public init(identity: Identity) { self.identity = identity }

    /// A new CA, valid for 20 years.
    public static func create(commonName: String = "ShelterSync CA", now: Date = Date()) throws -> ShelterCA {
        let key = Certificate.PrivateKey(P256.Signing.PrivateKey())
        let name = try DistinguishedName {
            OrganizationName("ShelterSync")
            CommonName(commonName)
        }
        let certificate = try Certificate(
            version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: key.publicKey,
            notValidBefore: now.addingTimeInterval(-300), notValidAfter: now.addingTimeInterval(20 * 365 * 86_400),
            issuer: name, subject: name, signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.isCertificateAuthority(maxPathLength: 0))
                Critical(KeyUsage(keyCertSign: true, cRLSign: true))
                SubjectKeyIdentifier(hash: key.publicKey)
            },
            issuerPrivateKey: key)
        return ShelterCA(identity: Identity(certificate: certificate, privateKey: key))
    }

    /// The server's certificate: names localhost, 127.0.0.1, ::1 and each extra host. Valid 5 years.
    public func issueServer(hosts: [String] = [], now: Date = Date()) throws -> Identity {
        var names: [GeneralName] = [.dnsName("localhost"), try Self.ipName("127.0.0.1"), try Self.ipName("::1")]
        for host in hosts {
            if let ip = try? Self.ipName(host) { names.append(ip) } else { names.append(.dnsName(host)) }
        }
        return try issue(commonName: "ShelterSync server", names: names, usage: .serverAuth, years: 5, now: now)
    }

    /// A workstation's certificate: its name as common name, its replica id as `urn:uuid:`. Valid 5 years.
    public func issueWorkstation(name: String, replicaID: ReplicaID, now: Date = Date()) throws -> Identity {
        try issue(commonName: name, names: [.uniformResourceIdentifier("urn:uuid:\(replicaID)")], usage: .clientAuth, years: 5, now: now)
    }

    private func issue(commonName: String, names: [GeneralName], usage: ExtendedKeyUsage.Usage, years: Double, now: Date) throws -> Identity {
        let key = Certificate.PrivateKey(P256.Signing.PrivateKey())
        let subject = try DistinguishedName {
            OrganizationName("ShelterSync")
            CommonName(commonName)
        }
        let certificate = try Certificate(
            version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: key.publicKey,
            notValidBefore: now.addingTimeInterval(-300), notValidAfter: now.addingTimeInterval(years * 365 * 86_400),
            issuer: self.certificate.subject, subject: subject, signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.notCertificateAuthority)
                Critical(KeyUsage(digitalSignature: true))
                try ExtendedKeyUsage([usage])
                SubjectAlternativeNames(names)
                AuthorityKeyIdentifier(keyIdentifier: try? self.certificate.extensions.subjectKeyIdentifier?.keyIdentifier)
            },
            issuerPrivateKey: identity.privateKey)
        return Identity(certificate: certificate, privateKey: key)
    }

    /// Whether `certificate` was signed by this CA.
    public func signed(_ certificate: Certificate) -> Bool {
        certificate.issuer == self.certificate.subject && self.certificate.publicKey.isValidSignature(certificate.signature, for: certificate)
    }

    static func ipName(_ text: String) throws -> GeneralName {
        var v4 = in_addr()
        if inet_pton(AF_INET, text, &v4) == 1 {
            return .ipAddress(ASN1OctetString(contentBytes: ArraySlice(withUnsafeBytes(of: &v4) { Array($0) })))
        }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, text, &v6) == 1 {
            return .ipAddress(ASN1OctetString(contentBytes: ArraySlice(withUnsafeBytes(of: &v6) { Array($0) })))
        }
        throw TransportError("\(text) is not an IP address")
    }
}

extension Identity {
    /// Reads a certificate and a key from PEM text.
    public init(certificatePEM: String, privateKeyPEM: String, source: String) throws {
        do {
            let certificate = try Certificate(pemEncoded: certificatePEM)
            let key = try Certificate.PrivateKey(pemEncoded: privateKeyPEM)
            guard key.publicKey == certificate.publicKey else {
                throw TransportError("\(source): the private key does not belong to the certificate")
            }
            self.init(certificate: certificate, privateKey: key)
        } catch let error as TransportError {
            throw error
        } catch {
            throw TransportError("\(source): not a valid PEM certificate and private key (\(error))", underlying: error)
        }
    }
}

/// A workstation's enrollment bundle: its certificate, its private key and the shelter CA's
/// certificate, as PEM blocks in that order, in one file (mode 0600).
public struct WorkstationBundle: Sendable {
    public let identity: Identity
    public let caCertificate: Certificate
    public let replicaID: ReplicaID
    public let name: String

    public init(identity: Identity, caCertificate: Certificate) throws {
        guard let replicaID = identity.certificate.replicaID else {
            throw TransportError("the certificate carries no replica id (urn:uuid:…)")
        }
        self.identity = identity
        self.caCertificate = caCertificate
        self.replicaID = replicaID
        self.name = identity.certificate.workstationName ?? "workstation"
    }

    /// Parses a bundle; checks that the key belongs to the certificate and the CA signed it.
    public init(pem: String, source: String) throws {
        let documents: [PEMDocument]
        do {
            documents = try PEMDocument.parseMultiple(pemString: pem)
        } catch {
            throw TransportError("\(source) is not a ShelterSync bundle (no readable PEM blocks)", underlying: error)
        }
        let certificates = documents.filter { $0.discriminator == "CERTIFICATE" }
        let keys = documents.filter { $0.discriminator.hasSuffix("PRIVATE KEY") }
        guard certificates.count == 2, keys.count == 1 else {
            throw TransportError("\(source) is not a ShelterSync bundle (expected 2 certificates and 1 private key, found \(certificates.count) and \(keys.count))")
        }
        let identity = try Identity(certificatePEM: certificates[0].pemString, privateKeyPEM: keys[0].pemString, source: source)
        let ca: Certificate
        do { ca = try Certificate(pemDocument: certificates[1]) } catch {
            throw TransportError("\(source): the CA certificate cannot be read", underlying: error)
        }
        guard ShelterCA(identity: Identity(certificate: ca, privateKey: identity.privateKey)).signed(identity.certificate) else {
            throw TransportError("\(source): the workstation certificate was not signed by the bundle's CA")
        }
        try self.init(identity: identity, caCertificate: ca)
    }

    public var caPEM: String { get throws { try caCertificate.serializeAsPEM().pemString } }

    public func pem() throws -> String {
        try identity.certificatePEM + "\n" + identity.privateKeyPEM + "\n" + caPEM + "\n"
    }
}
