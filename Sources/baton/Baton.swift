import ArgumentParser
import Foundation

/// `print`, written out at once even when standard output is a pipe or a file (where the C library
/// would hold it until its buffer fills or the process exits), so that `baton watch ID | …` and
/// `baton serve > log` show each line as it happens. Every command in this module prints through it.
func print(_ items: Any..., separator: String = " ", terminator: String = "\n") {
    Swift.print(items.map { "\($0)" }.joined(separator: separator), terminator: terminator)
    fflush(nil)
}

/// `baton`: the orchestrator and its client commands.
@main
struct Baton: AsyncParsableCommand {
    /// This build's version (`baton --version`).
    static let version = "0.3.0"

    static let configuration = CommandConfiguration(
        commandName: "baton",
        abstract: "Baton: an orchestrated saga engine for payments and banking flows.",
        discussion: """
            See docs/ for the architecture, the workflow format and the wire protocol. Shell completion: \\
            baton --generate-completion-script bash|zsh|fish (docs/operations.md, Command line).
            """,
        version: version,
        subcommands: [
            ServeCommand.self, DevCommand.self, SubmitCommand.self, GetCommand.self, WatchCommand.self, ListCommand.self,
            HistoryCommand.self, CancelCommand.self, SignalCommand.self, RetryCommand.self, SkipCommand.self, ResolveCommand.self,
            CompensateCommand.self, WorkflowsCommand.self, ParticipantsCommand.self, TokenCommand.self,
        ]
    )
}
