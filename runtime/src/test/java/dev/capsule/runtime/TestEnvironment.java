package dev.capsule.runtime;

import dev.capsule.runtime.bundle.BundleCache;
import dev.capsule.runtime.bundle.BundleInputs;
import dev.capsule.runtime.bundle.RuntimeBundle;
import dev.capsule.runtime.template.Template;
import dev.capsule.runtime.template.TemplateCache;
import dev.capsule.runtime.template.TemplateRecipe;

import javax.tools.ToolProvider;
import java.io.IOException;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.jar.Attributes;
import java.util.jar.JarEntry;
import java.util.jar.JarOutputStream;
import java.util.jar.Manifest;

/**
 * What the runtime's integration tests share: the base template and a runtime bundle, both in the machine's
 * template cache ($CAPSULE_CACHE_DIR or /var/cache/capsule) so they are built once, not once per test or run.
 * The bundle carries, in place of envd, a small probe program (below) compiled here.
 */
public final class TestEnvironment {

    private static Template template;
    private static RuntimeBundle bundle;

    private TestEnvironment() {
    }

    public static Path cacheDir() {
        String dir = System.getenv("CAPSULE_CACHE_DIR");
        return Path.of(dir == null || dir.isBlank() ? "/var/cache/capsule" : dir);
    }

    public static synchronized Template baseTemplate() {
        if (template == null) {
            template = new TemplateCache(cacheDir().resolve("templates")).ensure(TemplateRecipe.base());
        }
        return template;
    }

    public static synchronized RuntimeBundle bundle() {
        if (bundle == null) {
            Path jar = probeJar();
            try {
                bundle = new BundleCache(cacheDir().resolve("bundles")).ensure(BundleInputs.of(jar, null));
            } finally {
                dev.capsule.runtime.host.Mounts.deleteTree(jar.getParent());
            }
        }
        return bundle;
    }

    /** The probe's source: "hello" prints a greeting; "run cmd..." runs cmd as a child (FORK launcher). */
    static final String PROBE_SOURCE = """
            public class Probe {
                public static void main(String[] args) throws Exception {
                    switch (args[0]) {
                        case "hello" -> System.out.println("hello from java " + Runtime.version().feature());
                        case "run" -> {
                            var command = java.util.Arrays.asList(args).subList(1, args.length);
                            Process p = new ProcessBuilder(command).redirectErrorStream(true).start();
                            System.out.print(new String(p.getInputStream().readAllBytes()));
                            System.out.println("exit=" + p.waitFor());
                        }
                        default -> throw new IllegalArgumentException(args[0]);
                    }
                    System.out.flush();
                }
            }
            """;

    /** The probe as a jar with fixed timestamps, so its bytes (and the bundle's hash) are the same every run. */
    static Path probeJar() {
        try {
            Path dir = Files.createTempDirectory("capsule-probe");
            Path source = dir.resolve("Probe.java");
            Files.writeString(source, PROBE_SOURCE);
            int rc = ToolProvider.getSystemJavaCompiler().run(null, null, null, "--release", "25", "-d",
                    dir.toString(), source.toString());
            if (rc != 0) {
                throw new IllegalStateException("probe does not compile");
            }
            Path jar = dir.resolve("probe.jar");
            Manifest manifest = new Manifest();
            manifest.getMainAttributes().put(Attributes.Name.MANIFEST_VERSION, "1.0");
            manifest.getMainAttributes().put(Attributes.Name.MAIN_CLASS, "Probe");
            try (OutputStream out = Files.newOutputStream(jar); JarOutputStream jarOut = new JarOutputStream(out)) {
                JarEntry manifestEntry = new JarEntry("META-INF/MANIFEST.MF");
                manifestEntry.setTime(0);
                jarOut.putNextEntry(manifestEntry);
                manifest.write(jarOut);
                jarOut.closeEntry();
                JarEntry entry = new JarEntry("Probe.class");
                entry.setTime(0);
                jarOut.putNextEntry(entry);
                jarOut.write(Files.readAllBytes(dir.resolve("Probe.class")));
                jarOut.closeEntry();
            }
            return jar;
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }
}
