import ArgumentParser

/// `baton`: the orchestrator and its client commands.
@main
struct Baton: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "baton",
        abstract: "Baton: an orchestrated saga engine for payments and banking flows.",
        discussion: "See docs/ for the architecture, the workflow format and the wire protocol.",
        subcommands: [
            ServeCommand.self, DevCommand.self, SubmitCommand.self, GetCommand.self, WatchCommand.self, ListCommand.self,
            CancelCommand.self, SignalCommand.self,
            WorkflowsCommand.self, TokenCommand.self,
        ]
    )
}
