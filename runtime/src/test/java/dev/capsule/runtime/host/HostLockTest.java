package dev.capsule.runtime.host;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.Optional;
import java.util.concurrent.TimeUnit;

import static org.assertj.core.api.Assertions.assertThat;

class HostLockTest {

    @Test
    void anotherProcessHoldingTheLockKeepsUsOutUntilItLetsGo(@TempDir Path dir) throws Exception {
        Path file = dir.resolve("runc.lock");
        // Java's file locks are POSIX record locks; python's lockf takes the same kind.
        Process holder = new ProcessBuilder("python3", "-c",
                "import fcntl,sys,time\nf=open(sys.argv[1],'w')\nfcntl.lockf(f,fcntl.LOCK_EX)\nprint('locked',flush=True)\n"
                        + "sys.stdin.read()", file.toString()).start();
        try {
            var out = new BufferedReader(new InputStreamReader(holder.getInputStream(), StandardCharsets.UTF_8));
            assertThat(out.readLine()).isEqualTo("locked");
            assertThat(HostLock.tryAcquire(file)).isEmpty();
        } finally {
            holder.getOutputStream().close();
            assertThat(holder.waitFor(10, TimeUnit.SECONDS)).isTrue();
        }
        Optional<HostLock> mine = HostLock.tryAcquire(file);
        assertThat(mine).isPresent();
        mine.get().close();
    }

    @Test
    void oneProcessSharesItsClaimAndReleasesItWithTheLastHolder(@TempDir Path dir) throws Exception {
        Path file = dir.resolve("net.lock");
        HostLock first = HostLock.tryAcquire(file).orElseThrow();
        HostLock second = HostLock.tryAcquire(file).orElseThrow();
        first.close();
        first.close();
        Process probe = new ProcessBuilder("python3", "-c",
                "import fcntl,sys\nf=open(sys.argv[1],'w')\ntry:\n  fcntl.lockf(f,fcntl.LOCK_EX|fcntl.LOCK_NB)\n  print('free')\n"
                        + "except OSError:\n  print('held')", file.toString()).start();
        assertThat(new String(probe.getInputStream().readAllBytes(), StandardCharsets.UTF_8).strip()).isEqualTo("held");
        probe.waitFor();
        second.close();
        Process again = new ProcessBuilder("python3", "-c",
                "import fcntl,sys\nf=open(sys.argv[1],'w')\ntry:\n  fcntl.lockf(f,fcntl.LOCK_EX|fcntl.LOCK_NB)\n  print('free')\n"
                        + "except OSError:\n  print('held')", file.toString()).start();
        assertThat(new String(again.getInputStream().readAllBytes(), StandardCharsets.UTF_8).strip()).isEqualTo("free");
        again.waitFor();
    }
}
