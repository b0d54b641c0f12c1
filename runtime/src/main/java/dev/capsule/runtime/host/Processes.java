package dev.capsule.runtime.host;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

/** Host processes as {@code /proc} shows them. */
public final class Processes {

    private Processes() {
    }

    /** Whether process {@code pid} still runs: it exists and is not a zombie (ended, not yet reaped). */
    public static boolean alive(long pid) {
        try {
            String stat = Files.readString(Path.of("/proc", String.valueOf(pid), "stat"));
            char state = stat.charAt(stat.lastIndexOf(')') + 2);
            return state != 'Z' && state != 'X';
        } catch (IOException | RuntimeException e) {
            return false;
        }
    }
}
