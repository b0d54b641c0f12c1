package dev.capsule.runtime.microvm;

import java.io.IOException;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.security.SecureRandom;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

/**
 * Talks to the guest agent ({@code capsule-guest agent}) over the VM's serial console socket: one command line, answered by
 * {@code capsule-ok <nonce>} or {@code capsule-failed <nonce>} among whatever else the console prints. The console
 * is the one channel that works right after a restore, before the guest has its new address.
 */
final class GuestAgent {

    private static final SecureRandom RANDOM = new SecureRandom();
    /** Host entropy handed to each restored guest: 64 bytes, as much as the kernel's pool takes in one go. */
    private static final int SEED_BYTES = 64;

    private GuestAgent() {
    }

    /**
     * Gives a restored guest its clock, fresh entropy and the sandbox's identity: address/prefix, gateway,
     * hostname and nameservers.
     */
    static void restore(Path console, String address, String gateway, String hostname, List<String> nameservers,
                        Duration timeout) throws IOException {
        byte[] seed = new byte[SEED_BYTES];
        RANDOM.nextBytes(seed);
        Instant now = Instant.now();
        call(console, "restore", List.of(String.valueOf(now.getEpochSecond()), String.valueOf(now.getNano()),
                HexFormat.of().formatHex(seed), address, gateway, hostname, String.join(",", nameservers)), timeout);
    }

    /** Writes the guest's page cache to its disk. */
    static void sync(Path console, Duration timeout) throws IOException {
        call(console, "sync", List.of(), timeout);
    }

    private static void call(Path console, String command, List<String> args, Duration timeout) throws IOException {
        String nonce = HexFormat.of().formatHex(randomBytes());
        List<String> words = new ArrayList<>(List.of(command, nonce));
        words.addAll(args);
        for (String word : words) {
            if (word.isEmpty() || word.chars().anyMatch(c -> c <= ' ' || c > '~')) {
                throw new IllegalArgumentException("guest agent arguments must be printable words, got '" + word + "'");
            }
        }
        try (SocketChannel channel = SocketChannel.open(UnixDomainSocketAddress.of(console))) {
            CompletableFuture<String> answer = new CompletableFuture<>();
            Thread.ofVirtual().name("guest-agent").start(() -> answer.complete(readAnswer(channel, nonce)));
            channel.write(ByteBuffer.wrap((String.join(" ", words) + "\n").getBytes(StandardCharsets.US_ASCII)));
            String result;
            try {
                result = answer.get(timeout.toMillis(), TimeUnit.MILLISECONDS);
            } catch (TimeoutException e) {
                throw new IOException("the guest agent did not answer '" + command + "' within " + timeout.toMillis()
                        + " ms");
            } catch (ExecutionException e) {
                throw new IOException("reading the guest agent's answer failed: " + e.getCause().getMessage(), e);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new IOException("interrupted while waiting for the guest agent", e);
            }
            if (result == null) {
                throw new IOException("the VM's console closed before the guest agent answered '" + command + "'");
            }
            if (!result.startsWith("capsule-ok")) {
                throw new IOException("the guest agent could not do '" + command + "': " + result);
            }
        }
    }

    private static byte[] randomBytes() {
        byte[] bytes = new byte[6];
        RANDOM.nextBytes(bytes);
        return bytes;
    }

    /** The agent's answer line for {@code nonce}, or null when the console closed first. */
    private static String readAnswer(SocketChannel channel, String nonce) {
        StringBuilder seen = new StringBuilder();
        ByteBuffer buffer = ByteBuffer.allocate(4096);
        try {
            while (channel.read(buffer.clear()) >= 0) {
                seen.append(StandardCharsets.ISO_8859_1.decode(buffer.flip()));
                for (String outcome : List.of("capsule-ok " + nonce, "capsule-failed " + nonce)) {
                    int at = seen.indexOf(outcome);
                    if (at >= 0) {
                        int end = seen.indexOf("\n", at);
                        if (end >= 0) {
                            return seen.substring(at, end).strip();
                        }
                    }
                }
                if (seen.length() > 1 << 20) {
                    seen.delete(0, seen.length() - 4096); // a chatty console: keep only the tail
                }
            }
        } catch (IOException e) {
            // closed by the timeout in call(), or by QEMU's exit
        }
        return null;
    }
}
