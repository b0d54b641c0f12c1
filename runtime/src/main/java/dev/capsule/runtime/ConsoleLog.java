package dev.capsule.runtime;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;

/**
 * Reads a sandbox's console.log in whole lines from a byte offset. The file is written by the sandbox's processes
 * (runc hands a container's its descriptors; a VM's is its serial console), so it is read as untrusted bytes: decoded leniently, no line longer than the
 * read size, and only regular-file reads of a path the driver made (the sandbox cannot reach it: it is outside
 * its root).
 */
public final class ConsoleLog {

    private ConsoleLog() {}

    public static Optional<ConsoleOutput> read(Path log, long from, int maxBytes) {
        if (from < 0 || maxBytes < 1) {
            throw new IllegalArgumentException("offset must be >= 0 and maxBytes >= 1, got " + from + ", " + maxBytes);
        }
        try (FileChannel channel = FileChannel.open(log, StandardOpenOption.READ, java.nio.file.LinkOption.NOFOLLOW_LINKS)) {
            long size = channel.size();
            if (from >= size) {
                return Optional.of(new ConsoleOutput(List.of(), Math.min(from, size)));
            }
            ByteBuffer buffer = ByteBuffer.allocate((int) Math.min(maxBytes, size - from));
            while (buffer.hasRemaining() && channel.read(buffer, from + buffer.position()) > 0) {
                // read until full or end of file
            }
            byte[] bytes = buffer.array();
            int length = buffer.position();
            List<String> lines = new ArrayList<>();
            int start = 0;
            for (int i = 0; i < length; i++) {
                if (bytes[i] == '\n') {
                    lines.add(new String(bytes, start, i - start, StandardCharsets.UTF_8));
                    start = i + 1;
                }
            }
            if (start == 0 && length == maxBytes) {
                // one line longer than a whole read: hand it out cut, or it would block every later line
                lines.add(new String(bytes, 0, length, StandardCharsets.UTF_8));
                start = length;
            }
            return Optional.of(new ConsoleOutput(lines, from + start));
        } catch (NoSuchFileException e) {
            return Optional.empty();
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read the console log " + log + ": " + e.getMessage(), e);
        }
    }
}
