import ChunkMesh
import MeshCore
import NIOConcurrencyHelpers

/// In tests a peer is written by its name: `"a"` is the number the simulator's table (key 0) gives the name "a", and
/// a core fed by hand needs no table at all.
extension PeerID: ExpressibleByStringLiteral, ExpressibleByStringInterpolation {
    public init(stringLiteral name: String) {
        self.init(PeerNames.number(of: name, key: 0))
        TestNames.seen.withLockedValue { $0[self] = name }
    }
}

/// The names tests wrote peers by, for failure messages.
enum TestNames {
    static let seen = NIOLockedValueBox<[PeerID: String]>([:])
    static func name(_ id: PeerID) -> String { seen.withLockedValue { $0[id] } ?? id.description }
}

extension MeshPeer {
    /// `debugState` with the peers by the names the test gave them.
    var debugState: String { debugState(TestNames.name) }
}
