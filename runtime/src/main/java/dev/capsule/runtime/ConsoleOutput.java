package dev.capsule.runtime;

import java.util.List;

/**
 * Whole lines of a sandbox's console output (what its init and envd write to stdout and stderr) read from one
 * byte offset, and the offset to read on from: {@code next} is just past the last line returned, so a line still
 * being written is returned whole on a later read.
 */
public record ConsoleOutput(List<String> lines, long next) {
    public ConsoleOutput {
        lines = List.copyOf(lines);
    }
}
