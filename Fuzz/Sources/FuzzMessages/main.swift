import MeshCore
import FuzzDriver
import NIOCore

/// Any bytes a sealed frame may carry: decoded, and what decodes must encode back to the same message.
func fuzzMessages(_ start: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    guard let start else { return 0 }
    let buffer = ByteBuffer(bytes: UnsafeRawBufferPointer(start: start, count: count))
    guard let message = try? Message.decode(buffer) else { return 0 }
    let again = try! Message.decode(message.encode())
    precondition(again == message, "\(message) encodes to \(again)")
    return 0
}

runFuzzer { fuzzMessages($0, $1) }
