package dev.capsule.runtime.bundle;

import dev.capsule.runtime.TestEnvironment;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.stream.Stream;

import static org.assertj.core.api.Assertions.assertThat;

class RuntimeBundleTest {

    @Test
    void theBundleHoldsARuntimeItsOwnLoaderAndLibcAndTheInit() throws IOException {
        RuntimeBundle bundle = TestEnvironment.bundle();
        Path root = bundle.root();

        assertThat(root.resolve("jre/bin/java")).isExecutable();
        assertThat(root.resolve("bin/init")).isExecutable();
        assertThat(root.resolve("envd.jar")).isRegularFile();
        for (String library : List.of("ld-linux-x86-64.so.2", "libc.so.6", "libm.so.6", "libdl.so.2",
                "libpthread.so.0", "librt.so.1")) {
            assertThat(root.resolve("lib").resolve(library)).as(library).isRegularFile();
            assertThat(Files.isSymbolicLink(root.resolve("lib").resolve(library))).isFalse();
        }
        assertThat(Files.readString(root.resolve("jre/release"))).contains("java.base", "jdk.unsupported");
        System.out.println("runtime bundle " + bundle.hash() + ": " + sizeOf(root) / (1024 * 1024) + " MiB");
    }

    @Test
    void theJvmRunsOnTheBundlesOwnLoaderAndLibraries() {
        Path root = TestEnvironment.bundle().root();
        var result = dev.capsule.runtime.host.Command.run(List.of(root.resolve("lib/ld-linux-x86-64.so.2").toString(),
                "--library-path", root.resolve("lib").toString(), root.resolve("jre/bin/java").toString(),
                "-Djdk.lang.Process.launchMechanism=FORK", "-jar", root.resolve("envd.jar").toString(), "hello"), 60);

        assertThat(result.stdout()).contains("hello from java 25");
    }

    /**
     * The bundle with the real envd carries envd's AOT cache, and the JVM accepts it for envd started as sandboxes
     * start it (same runtime, jar path and flags): with -Xlog:aot it says the cache was mapped.
     */
    @Test
    void envdStartsFromTheBundlesAotCache() {
        var config = dev.capsule.runtime.oci.OciRuntimeConfig.defaults();
        RuntimeBundle bundle = BundleCache.fromEnvironment().ensure(BundleInputs.of(config.envdJar(), config.execHelper()));
        assertThat(bundle.root().resolve("envd.aot")).isRegularFile();

        List<String> command = new java.util.ArrayList<>(List.of("unshare", "--mount", "--propagation", "private",
                "sh", "-c", "mount -t tmpfs t /opt && mkdir /opt/capsule && mount --bind \"$0\" /opt/capsule"
                        + " && exec \"$@\"", bundle.root().toString()));
        List<String> jvm = new java.util.ArrayList<>(RuntimeBundle.ENVD_JVM_OPTIONS);
        jvm.addAll(List.of("-XX:AOTCache=" + RuntimeBundle.ENVD_AOT_CACHE, "-Xlog:aot", "-jar",
                RuntimeBundle.ENVD_JAR, "--help"));
        command.addAll(RuntimeBundle.javaCommand(jvm));
        var result = dev.capsule.runtime.host.Command.run(command, 60);

        assertThat(result.stdout() + result.stderr()).as("the JVM's AOT log").contains("Opened AOT cache")
                .doesNotContain("Unable to", "mismatch", "disabled");
    }

    @Test
    void theHashDependsOnTheEnvdJar() throws IOException {
        Path jar = Files.createTempFile("capsule-fake-envd", ".jar");
        try {
            Files.writeString(jar, "one");
            String first = BundleInputs.of(jar, null).hash();
            assertThat(BundleInputs.of(jar, null).hash()).isEqualTo(first);
            Files.writeString(jar, "two");
            assertThat(BundleInputs.of(jar, null).hash()).isNotEqualTo(first);
        } finally {
            Files.delete(jar);
        }
    }

    static long sizeOf(Path dir) throws IOException {
        try (Stream<Path> files = Files.walk(dir)) {
            return files.filter(Files::isRegularFile).mapToLong(p -> p.toFile().length()).sum();
        }
    }
}
