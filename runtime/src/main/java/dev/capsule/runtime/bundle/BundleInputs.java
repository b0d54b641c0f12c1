package dev.capsule.runtime.bundle;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.DigestInputStream;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;
import java.util.List;
import java.util.Optional;

/**
 * What goes into a runtime bundle: the JDK to jlink from and its modules, the static init for PID 1, the envd
 * jar and the static exec helper. {@link #hash()} digests their contents (and the host's loader and libc, which
 * are copied in), so a new envd build or a libc update makes a new bundle.
 */
public record BundleInputs(Path javaHome, List<String> modules, Path init, Optional<Path> envdJar,
                           Optional<Path> execHelper) {

    public static final Path DEFAULT_JAVA_HOME = Path.of("/usr/lib/jvm/temurin-25-jdk-amd64");
    public static final Path DEFAULT_INIT = Path.of("/usr/bin/tini-static");
    /**
     * What envd needs from the JDK: Vert.x/Netty use jdk.unsupported (Unsafe), java.management and java.naming
     * (DNS resolver) when present; java.logging for JUL bridges; jdk.net for extended socket options.
     */
    public static final List<String> DEFAULT_MODULES = List.of("java.base", "java.logging", "java.management",
            "java.naming", "jdk.net", "jdk.unsupported");

    /** Host libraries the JVM links against, copied next to the loader (see {@link BundleCache}). */
    static final List<Path> HOST_LIBRARIES = List.of(
            Path.of("/lib64/ld-linux-x86-64.so.2"),
            Path.of("/lib/x86_64-linux-gnu/libc.so.6"),
            Path.of("/lib/x86_64-linux-gnu/libm.so.6"),
            Path.of("/lib/x86_64-linux-gnu/libdl.so.2"),
            Path.of("/lib/x86_64-linux-gnu/libpthread.so.0"),
            Path.of("/lib/x86_64-linux-gnu/librt.so.1"));

    public BundleInputs {
        modules = List.copyOf(modules);
    }

    public static BundleInputs of(Path envdJar, Path execHelper) {
        return new BundleInputs(DEFAULT_JAVA_HOME, DEFAULT_MODULES, DEFAULT_INIT, Optional.ofNullable(envdJar),
                Optional.ofNullable(execHelper));
    }

    /**
     * The inputs of a bundle of this envd build.
     *
     * @throws dev.capsule.runtime.RuntimeFailure the build's jar or exec helper is missing (envd not built)
     */
    public static BundleInputs ofBuild(Path envdJar, Path execHelper) {
        for (Path file : List.of(envdJar, execHelper)) {
            if (!java.nio.file.Files.isRegularFile(file)) {
                throw new dev.capsule.runtime.RuntimeFailure("envd build output " + file + " is missing: build envd"
                        + " with `./mvnw -pl envd -am package`, set CAPSULE_HOME to the repository, or configure the"
                        + " envd jar and exec helper paths");
            }
        }
        return of(envdJar, execHelper);
    }

    public String hash() {
        try {
            MessageDigest digest = MessageDigest.getInstance("SHA-256");
            update(digest, "format=2"); // 2: envd's AOT cache is part of the bundle
            update(digest, "modules=" + String.join(",", modules));
            digestFile(digest, javaHome.resolve("release"));
            digestFile(digest, init);
            envdJar.ifPresent(jar -> digestFile(digest, jar));
            update(digest, "exec=" + execHelper.isPresent());
            execHelper.ifPresent(exec -> digestFile(digest, exec));
            for (Path library : HOST_LIBRARIES) {
                digestFile(digest, library);
            }
            return HexFormat.of().formatHex(digest.digest(), 0, 8);
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }

    private static void update(MessageDigest digest, String text) {
        digest.update((text + "\n").getBytes(java.nio.charset.StandardCharsets.UTF_8));
    }

    private static void digestFile(MessageDigest digest, Path file) {
        update(digest, file.getFileName().toString());
        try (InputStream in = new DigestInputStream(Files.newInputStream(file), digest)) {
            in.transferTo(java.io.OutputStream.nullOutputStream());
        } catch (IOException e) {
            throw new UncheckedIOException("runtime bundle input " + file + " is not readable: " + e.getMessage(), e);
        }
    }
}
