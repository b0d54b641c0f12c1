package dev.capsule.cli;

import org.junit.jupiter.api.Test;
import picocli.CommandLine;

import java.io.PrintWriter;
import java.io.StringWriter;

import static org.assertj.core.api.Assertions.assertThat;

class CapsuleTest {
    record Run(int exit, String out, String err) {}

    static Run run(String... args) {
        StringWriter out = new StringWriter();
        StringWriter err = new StringWriter();
        CommandLine cli = new CommandLine(new Capsule()).setOut(new PrintWriter(out)).setErr(new PrintWriter(err));
        return new Run(cli.execute(args), out.toString(), err.toString());
    }

    @Test
    void envdHelpListsItsOptions() {
        Run r = run("envd", "--help");
        assertThat(r.exit()).isZero();
        assertThat(r.out()).contains("--port", "49983", "--host", "--default-user");
    }

    @Test
    void badInputIsRefusedWithAReason() {
        assertThat(run("envd", "--port", "nope").exit()).isEqualTo(2);
        assertThat(run("envd", "--port", "70000").exit()).isEqualTo(2);
        Run none = run();
        assertThat(none.exit()).isEqualTo(2);
        assertThat(none.err()).contains("capsule envd");
        assertThat(run("nosuch").exit()).isEqualTo(2);
    }

    @Test
    void envdRefusesAnUnknownDefaultUser() {
        Run r = run("envd", "--port", "0", "--default-user", "no-such-user-here");
        assertThat(r.exit()).isEqualTo(1);
    }
}
