import Foundation

/// An HTTP client that asks for a path and never reads a byte of the answer, with a small receive buffer so the
/// server's side fills soon: the slow player every served stream must survive.
public final class StalledClient {
    private let fd: Int32

    public struct CannotConnect: Error {}

    /// `raw`: these bytes instead of a whole request (half a request line, say).
    public init(host: String, port: Int, path: String, raw: String? = nil) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var small: Int32 = 4096
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, socklen_t(MemoryLayout<Int32>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        inet_pton(AF_INET, host, &addr.sin_addr)
        let connected = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else {
            close(fd)
            throw CannotConnect()
        }
        let request = raw ?? "GET \(path) HTTP/1.1\r\nHost: \(host):\(port)\r\n\r\n"
        _ = request.withCString { write(fd, $0, strlen($0)) }
    }

    /// The server has closed the connection (what it sent before is read and dropped).
    public var closedByServer: Bool {
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = recv(fd, &buffer, buffer.count, Int32(MSG_DONTWAIT))
            if n > 0 { continue }
            return n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)
        }
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
