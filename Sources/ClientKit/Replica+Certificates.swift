import Foundation
import GRDB
import NIOCore
import NIOPosix
import NIOSSL
import NIOTLS
import ShelterDomain
import SwiftASN1
import SyncCore
import SyncTransport
import X509

/// The workstation's certificate: its expiry, its renewal, and plain words for a refused handshake.
extension Replica {
    /// This workstation's certificate as stored in the replica, nil for a standalone replica.
    public func certificate() throws -> (serial: String, notValidBefore: Date, notValidAfter: Date)? {
        guard let stored = try read({ db in try store.identity(db) }) else { return nil }
        let certificate = try Self.checked { try Certificate(pemEncoded: stored.certificatePEM) }
        return (certificate.serialNumber.hex, certificate.notValidBefore, certificate.notValidAfter)
    }

    /// Installs a renewed bundle (`shelter server renew`): the same replica id and CA, a new
    /// certificate and key. The replica's records, counters and unsynced changes stay as they are;
    /// the old certificate stops working at the first sync with the new one.
    @discardableResult
    public func installBundle(pem: String, source: String) throws -> (serial: String, notValidAfter: Date) {
        let bundle: WorkstationBundle
        do { bundle = try WorkstationBundle(pem: pem, source: source) } catch let error as TransportError {
            throw ReplicaError(.invalidArgument, error.message, underlying: error)
        }
        guard bundle.replicaID == id else {
            throw ReplicaError(.invalidArgument, t("renew.otherReplica", ("source", source), ("other", bundle.replicaID), ("id", id)))
        }
        return try perform { db in
            guard let stored = try store.identity(db) else {
                throw ReplicaError(.invalidArgument, t("err.ReplicaCertificates.102", ("p1", path)))
            }
            guard try bundle.caPEM == stored.caPEM else {
                throw ReplicaError(.invalidArgument, t("renew.otherCA", ("source", source)))
            }
            try store.storeIdentity(db, StoredIdentity(certificatePEM: try bundle.identity.certificatePEM,
                                                       privateKeyPEM: try bundle.identity.privateKeyPEM, caPEM: stored.caPEM))
            return (bundle.identity.serial, bundle.identity.certificate.notValidAfter)
        }
    }

    /// A warning for staff before they write, when the last sync found this workstation's clock
    /// further from the server's than the server allows (its writes would carry a wrong time).
    public func clockWarning() throws -> String? {
        let state = try read { db in try store.state(db) }
        guard let skew = state.clockSkewMs, skew.magnitude > state.maxClockSkewMs else { return nil }
        let how = skew == .max ? "too far from" : "\(skew.magnitude / 60_000) minutes \(skew > 0 ? "ahead of" : "behind")"
        return "at the last sync this workstation's clock was \(how) the server's: set the clock right, or what is written now carries a wrong time"
    }

    /// Why a sync cannot even start with this certificate, in plain words; nil when it can.
    func certificateProblem(_ bundle: WorkstationBundle) -> String? {
        let certificate = bundle.identity.certificate
        let now = configuration.now()
        if certificate.notValidAfter < now {
            return "this workstation's certificate expired on \(Timestamp.format(certificate.notValidAfter)): ask the server admin for a new bundle (`shelter server renew --name \(bundle.name)`) and install it with `shelter renew --bundle FILE`; nothing was sent, every change stays here"
        }
        if certificate.notValidBefore > now {
            return "this workstation's clock says \(Timestamp.format(now)), before its certificate is valid (from \(Timestamp.format(certificate.notValidBefore))): set the clock right; nothing was sent"
        }
        return nil
    }

    /// Why the TLS handshake with `server` failed, found by looking at the server's certificate
    /// with checks off (nothing else is sent): expired, not yet valid, another CA, or not naming the
    /// address. Nil when the certificate looks right (then the server refused this workstation's).
    static func diagnoseHandshake(server: ServerAddress, bundle: WorkstationBundle, now: Date) async -> String? {
        guard let configuration = try? TLSSettings.probe(identity: bundle.identity),
              let context = try? NIOSSLContext(configuration: configuration) else { return nil }
        let peer: Certificate?
        do {
            let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .connectTimeout(.seconds(5))
                .connect(host: server.host, port: server.port) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        let handshake = HandshakeWaiter(promise: channel.eventLoop.makePromise())
                        do {
                            try channel.pipeline.syncOperations.addHandler(try NIOSSLClientHandler(context: context, serverHostname: nil))
                            try channel.pipeline.syncOperations.addHandler(handshake)
                            return (handshake.promise.futureResult, try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel))
                        } catch {
                            handshake.promise.fail(error)  // never left unfulfilled (NIO traps on a leaked promise)
                            throw error
                        }
                    }
                }
            let (handshake, connection) = channel
            peer = try await connection.executeThenClose { _, _ in
                try await handshake.get()
                return try await connection.channel.nioSSL_peerCertificate().get().flatMap { try? TLSSettings.certificate($0) }
            }
        } catch {
            return nil
        }
        guard let peer else { return nil }
        if peer.notValidAfter < now {
            return "the sync server's certificate expired on \(Timestamp.format(peer.notValidAfter)): the server admin issues a new one with `shelter server certify`"
        }
        if peer.notValidBefore > now {
            return "the sync server's certificate is valid only from \(Timestamp.format(peer.notValidBefore)), and this workstation's clock says \(Timestamp.format(now)): is one of the clocks wrong?"
        }
        guard ShelterCA(identity: Identity(certificate: bundle.caCertificate, privateKey: bundle.identity.privateKey)).signed(peer) else {
            return "the server at \(server) does not present this shelter's certificate: is it the right address?"
        }
        let names = (try? peer.extensions.subjectAlternativeNames).map { Array($0) } ?? []
        let named = names.contains { name in
            switch name {
            case .dnsName(let dns): return dns.lowercased() == server.host.lowercased()
            case .ipAddress(let bytes): return Self.ipText(Array(bytes.bytes)) == server.host
            default: return false
            }
        }
        if !named {
            let shown = names.compactMap { name -> String? in
                switch name {
                case .dnsName(let dns): return dns
                case .ipAddress(let bytes): return Self.ipText(Array(bytes.bytes))
                default: return nil
                }
            }
            return "the sync server's certificate does not name \(server.host) (it names \(shown.joined(separator: ", "))): the server admin issues one for that name with `shelter server certify --host \(server.host)`, or point this workstation at a name it has with `shelter set-server`"
        }
        return nil
    }

    /// Completes when the TLS handshake has, fails when the connection ends first.
    final class HandshakeWaiter: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer
        typealias InboundOut = ByteBuffer
        let promise: EventLoopPromise<Void>

        init(promise: EventLoopPromise<Void>) { self.promise = promise }

        func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
            if case TLSUserEvent.handshakeCompleted = event { promise.succeed(()) }
            context.fireUserInboundEventTriggered(event)
        }

        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            promise.fail(error)
            context.fireErrorCaught(error)
        }

        func channelInactive(context: ChannelHandlerContext) {
            promise.fail(ChannelError.eof)
            context.fireChannelInactive()
        }

        func handlerRemoved(context: ChannelHandlerContext) {
            promise.fail(ChannelError.ioOnClosedChannel)
        }
    }

    static func ipText(_ bytes: [UInt8]) -> String? {
        var buffer = [CChar](repeating: 0, count: 64)
        switch bytes.count {
        case 4:
            var address = in_addr()
            withUnsafeMutableBytes(of: &address) { $0.copyBytes(from: bytes) }
            return inet_ntop(AF_INET, &address, &buffer, socklen_t(buffer.count)).map { String(cString: $0) }
        case 16:
            var address = in6_addr()
            withUnsafeMutableBytes(of: &address) { $0.copyBytes(from: bytes) }
            return inet_ntop(AF_INET6, &address, &buffer, socklen_t(buffer.count)).map { String(cString: $0) }
        default:
            return nil
        }
    }
}
