import NIOCore

/// Why a peer's bytes were not a valid frame or message. Sent to the peer only as its code.
public struct WireError: Error, Hashable, Sendable, CustomStringConvertible {
    public enum Kind: String, Sendable {
        case frameTooLarge, malformedMessage
    }

    public var kind: Kind
    public var detail: String

    public init(_ kind: Kind, _ detail: String) {
        self.kind = kind
        self.detail = detail
    }

    public var description: String { "\(kind.rawValue): \(detail)" }
}

/// Frames: a 4-byte big-endian length, then that many bytes of one `WireMessage`.
///
/// A frame that announces more than `maximumFrameSize` is refused as soon as its length is read,
/// before any of it is buffered.
public struct WireFrameDecoder: ByteToMessageDecoder {
    public typealias InboundOut = WireMessage

    public static let defaultMaximumFrameSize = 8 * 1024 * 1024

    public let maximumFrameSize: Int

    public init(maximumFrameSize: Int = WireFrameDecoder.defaultMaximumFrameSize) {
        self.maximumFrameSize = maximumFrameSize
    }

    public mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let length = buffer.getInteger(at: buffer.readerIndex, as: UInt32.self) else { return .needMoreData }
        guard length <= maximumFrameSize else {
            throw WireError(.frameTooLarge, "a frame of \(length) bytes exceeds the limit of \(maximumFrameSize)")
        }
        guard buffer.readableBytes >= 4 + Int(length) else { return .needMoreData }
        buffer.moveReaderIndex(forwardBy: 4)
        let bytes = buffer.readBytes(length: Int(length))!
        do {
            context.fireChannelRead(wrapInboundOut(try WireMessage.decode(bytes)))
        } catch {
            throw WireError(.malformedMessage, error.description)
        }
        return .continue
    }

    public mutating func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws -> DecodingState {
        while try decode(context: context, buffer: &buffer) == .continue {}
        return .needMoreData
    }
}

public struct WireFrameEncoder: MessageToByteEncoder {
    public typealias OutboundIn = WireMessage

    public init() {}

    public func encode(data: WireMessage, out: inout ByteBuffer) throws {
        let bytes = data.encoded()
        out.writeInteger(UInt32(bytes.count))
        out.writeBytes(bytes)
    }
}

/// Closes a connection on which nothing arrived for the `IdleStateHandler`'s read timeout, raising
/// `ReadIdleTimeout.Timeout` first so the session can tell a silent peer from a broken one.
public final class ReadIdleTimeout: ChannelInboundHandler, Sendable {
    public typealias InboundIn = NIOAny

    public struct Timeout: Error {}

    public init() {}

    public func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let idle = event as? IdleStateHandler.IdleStateEvent, idle == .read {
            context.fireErrorCaught(Timeout())
            context.close(promise: nil)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }
}
