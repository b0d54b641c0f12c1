package dev.capsule.runtime.bundle;

import dev.capsule.runtime.cache.BuildCache;
import dev.capsule.runtime.host.Command;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.List;

/**
 * Runtime bundles on disk, keyed by {@link BundleInputs#hash()} (default {@value #DEFAULT_DIR}). Building one
 * jlinks the runtime (seconds), copies the init, envd, the exec helper and the host's loader and C libraries, and
 * records envd's AOT cache (seconds); every sandbox then bind-mounts the same directory read-only.
 */
public final class BundleCache {

    public static final String DEFAULT_DIR = "/var/cache/capsule/bundles";

    private final BuildCache cache;

    public BundleCache(Path dir) {
        this.cache = new BuildCache(dir);
    }

    /** The cache at {@code $CAPSULE_CACHE_DIR/bundles}, or {@value #DEFAULT_DIR}. */
    public static BundleCache fromEnvironment() {
        String base = System.getenv("CAPSULE_CACHE_DIR");
        return new BundleCache(base == null || base.isBlank() ? Path.of(DEFAULT_DIR) : Path.of(base, "bundles"));
    }

    public Path dir() {
        return cache.root();
    }

    public RuntimeBundle ensure(BundleInputs inputs) {
        String hash = inputs.hash();
        Path root = cache.ensure("bundle-" + hash, target -> build(inputs, target));
        return new RuntimeBundle(root, hash);
    }

    private static void build(BundleInputs inputs, Path target) throws IOException {
        Command.run(List.of(inputs.javaHome().resolve("bin/jlink").toString(),
                "--add-modules", String.join(",", inputs.modules()),
                "--strip-debug", "--no-man-pages", "--no-header-files", "--compress=zip-6",
                "--output", target.resolve("jre").toString()), 600).orThrow();

        Path lib = Files.createDirectories(target.resolve("lib"));
        for (Path library : BundleInputs.HOST_LIBRARIES) {
            // toRealPath: copy the library itself, named by its soname, never a symlink pointing at the host
            Files.copy(library.toRealPath(), lib.resolve(library.getFileName()), StandardCopyOption.REPLACE_EXISTING);
        }
        Path bin = Files.createDirectories(target.resolve("bin"));
        copyExecutable(inputs.init(), bin.resolve("init"));
        if (inputs.execHelper().isPresent()) {
            copyExecutable(inputs.execHelper().get(), bin.resolve("capsule-exec"));
        }
        if (inputs.envdJar().isPresent()) {
            Files.copy(inputs.envdJar().get(), target.resolve("envd.jar"));
        }
        if (inputs.envdJar().isPresent() && inputs.execHelper().isPresent()) {
            // the real envd (it always comes with its exec helper), not a test program in its place
            EnvdAotTraining.record(target);
        }
        Files.writeString(target.resolve("bundle.txt"), "hash=" + inputs.hash() + "\nmodules="
                + String.join(",", inputs.modules()) + "\njavaHome=" + inputs.javaHome() + "\n");
        // world-readable: processes of any sandbox user start the JVM from here
        Command.check("chmod", "-R", "a+rX,go-w", target.toString());
    }

    private static void copyExecutable(Path source, Path target) throws IOException {
        Files.copy(source.toRealPath(), target);
        Files.setPosixFilePermissions(target, PosixFilePermissions.fromString("rwxr-xr-x"));
    }
}
