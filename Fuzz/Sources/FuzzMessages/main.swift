import ChunkMesh
import NIOCore

/// Any bytes a sealed frame may carry: decoded, and what decodes must encode back to the same message.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzMessages(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    let buffer = ByteBuffer(bytes: UnsafeRawBufferPointer(start: start, count: count))
    guard let message = try? Message.decode(buffer) else { return 0 }
    let again = try! Message.decode(message.encode())
    precondition(again == message, "\(message) encodes to \(again)")
    return 0
}
