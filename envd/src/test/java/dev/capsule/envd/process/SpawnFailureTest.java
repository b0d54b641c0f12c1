package dev.capsule.envd.process;

import dev.capsule.connect.Code;
import dev.capsule.connect.ConnectException;
import dev.capsule.envd.rpc.process.ProcessConfig;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.nio.file.Path;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * How a failed start reaches the SDK: out of processes, memory or descriptors is {@code resource_exhausted} (the
 * SDK's RateLimitError), anything else {@code invalid_argument}. The e2e suite exhausts a real sandbox's pids limit.
 */
class SpawnFailureTest {

    static final ProcessConfig CONFIG = ProcessConfig.newBuilder().setCmd("/bin/true").build();

    static ConnectException failure(int errno) {
        return ProcessService.spawnFailure(CONFIG, Path.of("/"),
                new IOException("cannot start /bin/true", new Libc.ErrnoException("posix_spawn", errno)));
    }

    @Test
    void noRoomForAProcessIsResourceExhausted() {
        for (int errno : new int[] {Libc.EAGAIN, Libc.ENOMEM, Libc.EMFILE, Libc.ENFILE}) {
            ConnectException e = failure(errno);
            assertThat(e.code()).as("errno %d", errno).isEqualTo(Code.RESOURCE_EXHAUSTED);
            assertThat(e.getMessage()).contains("no room for another process", "end some processes");
        }
    }

    @Test
    void otherFailuresAreInvalidArgument() {
        assertThat(failure(2).code()).isEqualTo(Code.INVALID_ARGUMENT); // ENOENT
        assertThat(ProcessService.spawnFailure(CONFIG, Path.of("/"), new IOException("pty failed")).code())
                .isEqualTo(Code.INVALID_ARGUMENT);
    }
}
