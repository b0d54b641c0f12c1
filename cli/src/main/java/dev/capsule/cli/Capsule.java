package dev.capsule.cli;

import picocli.CommandLine;
import picocli.CommandLine.Command;

/** The {@code capsule} command: one subcommand per process Capsule runs. */
@Command(name = "capsule", mixinStandardHelpOptions = true, version = "capsule 0.1.0-SNAPSHOT",
        description = "Self-hostable sandboxes for AI agents, wire-compatible with E2B.",
        subcommands = {ServerCommand.class, KeysCommand.class, EnvdCommand.class})
public final class Capsule implements Runnable {
    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    @Override
    public void run() {
        throw new CommandLine.ParameterException(spec.commandLine(), "name a command, e.g. 'capsule envd'");
    }

    public static void main(String[] args) {
        System.exit(new CommandLine(new Capsule()).execute(args));
    }
}
