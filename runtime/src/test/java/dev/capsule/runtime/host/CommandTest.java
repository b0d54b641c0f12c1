package dev.capsule.runtime.host;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.List;
import org.junit.jupiter.api.Test;

class CommandTest {

    @Test
    void reportsOutputAndExitCode() {
        var r = Command.run(List.of("sh", "-c", "echo out; echo err >&2; exit 3"), 10);
        assertThat(r.exitCode()).isEqualTo(3);
        assertThat(r.stdout()).isEqualTo("out\n");
        assertThat(r.stderr()).isEqualTo("err\n");
        assertThatThrownBy(r::orThrow).hasMessageContaining("exited with 3: err");
    }

    @Test
    void theOutputFilesAreUnlinkedWhileTheCommandRuns() {
        // A server killed mid-command must leave no temp files: by the time the command looks, its output file is gone
        // from the directory (the kernel marks an open, unlinked file "(deleted)").
        var r = Command.run(List.of("sh", "-c", "sleep 1; readlink /proc/self/fd/1"), 10);
        assertThat(r.stdout().strip()).contains("capsule-cmd").endsWith("(deleted)");
    }

    @Test
    void aCommandPastItsTimeoutIsKilled() {
        var r = Command.run(List.of("sh", "-c", "echo started; exec sleep 30"), 1);
        assertThat(r.exitCode()).isEqualTo(-1);
        assertThat(r.stdout()).isEqualTo("started\n");
        assertThat(r.stderr()).startsWith("timed out after 1 s");
    }
}
