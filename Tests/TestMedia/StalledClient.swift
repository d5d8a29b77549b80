import Foundation

/// An HTTP client that asks for a path and never reads a byte of the answer, with a small receive buffer so the
/// server's side fills soon: the slow player every served stream must survive.
public final class StalledClient {
    private let fd: Int32

    public struct CannotConnect: Error {}

    /// Bytes read so far (by `closedByServer`).
    public private(set) var received = 0

    /// `raw`: these bytes instead of a whole request (half a request line, say); `from`: the local address to
    /// connect from (another of 127.0.0.0/8, as a second host).
    public init(host: String, port: Int, path: String, raw: String? = nil, from: String? = nil) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var small: Int32 = 4096
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, socklen_t(MemoryLayout<Int32>.size))
        let fd = fd
        func call(_ address: String, port: Int, _ op: (Int32, UnsafePointer<sockaddr>, socklen_t) -> Int32) throws {
            var addr = sockaddr_in()
            addr.sin_family = sa_family_t(AF_INET)
            addr.sin_port = in_port_t(UInt16(port).bigEndian)
            inet_pton(AF_INET, address, &addr.sin_addr)
            let status = withUnsafePointer(to: &addr) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { op(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            guard status == 0 else {
                close(fd)
                throw CannotConnect()
            }
        }
        if let from { try call(from, port: 0, bind) }
        try call(host, port: port, connect)
        let request = raw ?? "GET \(path) HTTP/1.1\r\nHost: \(host):\(port)\r\n\r\n"
        _ = request.withCString { write(fd, $0, strlen($0)) }
    }

    /// The server has closed the connection (what it sent before is read and dropped).
    public var closedByServer: Bool {
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = recv(fd, &buffer, buffer.count, Int32(MSG_DONTWAIT))
            if n > 0 {
                received += n
                continue
            }
            return n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)
        }
    }

    /// The server has closed the connection, told without reading anything (a client that never reads).
    public var hungUp: Bool {
        let rdhup: Int16 = 0x2000 // POLLRDHUP (Linux), which Glibc does not export to Swift
        var p = pollfd(fd: fd, events: rdhup, revents: 0)
        guard poll(&p, 1, 0) == 1 else { return false }
        return p.revents & (rdhup | Int16(POLLHUP | POLLERR)) != 0
    }

    deinit { close(fd) }
}

/// Waits for a condition, with a deadline; throws `TimedOut` past it.
public func waitFor(_ what: String, seconds: Double = 30, _ condition: () -> Bool) throws {
    let end = Date().addingTimeInterval(seconds)
    while !condition() {
        guard Date() < end else { throw TimedOut(what: what) }
        usleep(5_000)
    }
}

public struct TimedOut: Error, CustomStringConvertible {
    public var what: String
    public var description: String { "timed out waiting: \(what)" }
}
