import ArgumentParser
import ChunkMesh
import MeshCore
import Foundation
import CommandSupport
import LSP2PKit

struct Keygen: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print a new key file: the channel key and the origin's signing key.",
        discussion: """
        The file holds the channel key (it admits peers), origin= (the origin's public key, which every chunk is \
        checked against) and origin-secret= (the origin's signing key: keep it on the origin's machine only). \
        --public prints the copy to hand to relays and players, without the secret. Example:
          lsp2p-relay keygen > origin.key && chmod 600 origin.key
          lsp2p-relay keygen --public origin.key > channel.key
        """
    )

    @Option(help: "Print this key file's copy for viewers (no origin-secret) instead of a new key file.")
    var `public`: String?

    func run() throws {
        guard let path = `public` else {
            return print(KeyFile(channel: ChannelKey.random(), originSecret: OriginSigningKey()).text(includingSecret: true), terminator: "")
        }
        do {
            print(try KeyFile(contentsOfFile: path).text(includingSecret: false), terminator: "")
        } catch {
            printErr("lsp2p-relay: --public \(path): \(error)")
            throw ExitCode.failure
        }
    }
}
