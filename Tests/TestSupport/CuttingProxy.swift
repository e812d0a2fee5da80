import Foundation
import NIOCore
import NIOPosix
import Synchronization

/// A TCP proxy on loopback that forwards to `target` and, while `cutAfter` is set, drops each
/// connection after that many bytes have come back from the target — in the middle of a frame.
public final class CuttingProxy: Sendable {
    final class CutSetting: Sendable {
        let bytes = Mutex<Int?>(nil)
    }

    public let port: Int
    let cut = CutSetting()
    let listener: NIOAsyncChannel<NIOAsyncChannel<ByteBuffer, ByteBuffer>, Never>
    let task: Task<Void, any Error>

    public static func start(to target: Int, cutAfter: Int?) async throws -> CuttingProxy {
        let listener = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .bind(host: "127.0.0.1", port: 0) { channel in
                channel.eventLoop.makeCompletedFuture { try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel) }
            }
        return CuttingProxy(listener: listener, target: target, cutAfter: cutAfter)
    }

    init(listener: NIOAsyncChannel<NIOAsyncChannel<ByteBuffer, ByteBuffer>, Never>, target: Int, cutAfter: Int?) {
        self.listener = listener
        port = listener.channel.localAddress?.port ?? 0
        cut.bytes.withLock { $0 = cutAfter }
        let cut = self.cut
        task = Task {
            try await withThrowingDiscardingTaskGroup { group in
                try await listener.executeThenClose { clients in
                    for try await client in clients {
                        let limit = cut.bytes.withLock { $0 }
                        group.addTask { await Self.relay(client, to: target, cutAfter: limit) }
                    }
                }
            }
        }
    }

    public func setCut(_ bytes: Int?) { cut.bytes.withLock { $0 = bytes } }

    public func stop() async {
        try? await listener.channel.close()
        task.cancel()
    }

    static func relay(_ client: NIOAsyncChannel<ByteBuffer, ByteBuffer>, to target: Int, cutAfter: Int?) async {
        do {
            let upstream = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .connect(host: "127.0.0.1", port: target) { channel in
                    channel.eventLoop.makeCompletedFuture { try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel) }
                }
            try await client.executeThenClose { clientIn, clientOut in
                try await upstream.executeThenClose { upIn, upOut in
                    try await withThrowingTaskGroup(of: Void.self) { group in
                        group.addTask {
                            for try await buffer in clientIn { try await upOut.write(buffer) }
                        }
                        group.addTask {
                            var sent = 0
                            for try await var buffer in upIn {
                                if let cutAfter, sent + buffer.readableBytes >= cutAfter {
                                    if let part = buffer.readSlice(length: max(0, cutAfter - sent)), part.readableBytes > 0 { try await clientOut.write(part) }
                                    client.channel.close(promise: nil)
                                    upstream.channel.close(promise: nil)
                                    return
                                }
                                sent += buffer.readableBytes
                                try await clientOut.write(buffer)
                            }
                        }
                        try await group.next()
                        group.cancelAll()
                    }
                }
            }
        } catch {
            // A cut connection ends here; that is the point.
        }
    }
}
