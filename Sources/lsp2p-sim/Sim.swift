import ArgumentParser
import Foundation
import CommandSupport
import LSP2PKit

@main
struct Sim: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lsp2p-sim",
        abstract: "Simulate LSP2P: a packet-level wireless model, and the Fast-Mesh overlay at scale against baselines.",
        discussion: """
        Both modes are deterministic for a seed, print progress on stderr and end with a summary.
          lsp2p-sim packet --nodes 1000 --out sim-out/packet
          lsp2p-sim overlay --peers 1000 --algo fastmesh,centralized,random,tree --out sim-out/overlay
        """,
        subcommands: [PacketCommand.self, OverlayCommand.self, CheckCommand.self]
    )

    static func main() { mainWithContractExitCodes() }
}

/// Writes a report to the `--out` folder; a failure is one `lsp2p-sim: …` line and exit 1.
func writeOutput(to out: String, _ write: (URL) throws -> Void) throws {
    try exitingOnFailure("lsp2p-sim") {
        do { try write(URL(fileURLWithPath: out)) } catch { throw RuntimeFailure("cannot write \(out): \(error.localizedDescription)") }
    }
}
