import CFFmpeg

/// An FFmpeg failure, with FFmpeg's own message and what we were doing.
public struct AVError: Error, CustomStringConvertible, Equatable {
    public let code: Int32
    public let action: String

    public init(_ code: Int32, _ action: String) {
        self.code = code
        self.action = action
    }

    public var message: String {
        var buf = [CChar](repeating: 0, count: 256)
        return String(cString: lsp2p_err2str(code, &buf, buf.count))
    }

    public var description: String { "\(action): \(message)" }

    public static var eof: Int32 { lsp2p_averror_eof() }
    public static var again: Int32 { lsp2p_averror_eagain() }
}

/// Throws an `AVError` when an FFmpeg call returns a negative code; returns the code otherwise.
@discardableResult
func check(_ code: Int32, _ action: @autoclosure () -> String) throws -> Int32 {
    if code < 0 { throw AVError(code, action()) }
    return code
}

/// Errors of ours about media, not FFmpeg's.
public struct MediaError: Error, CustomStringConvertible, Equatable {
    public let description: String
    public init(_ description: String) { self.description = description }
}

let noPTS = lsp2p_nopts_value()
