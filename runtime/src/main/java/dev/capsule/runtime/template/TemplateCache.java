package dev.capsule.runtime.template;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.capsule.runtime.Resources;
import dev.capsule.runtime.RuntimeFailure;
import dev.capsule.runtime.cache.BuildCache;
import dev.capsule.runtime.host.Command;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;

/**
 * Built templates on disk, shared by all data directories of the machine (default
 * {@value #DEFAULT_DIR}): each is {@code <dir>/<name>-<recipe hash>/} with {@code rootfs/}, the installed
 * package list {@code packages.txt} and {@code template.json} (recipe, resources, build time). A template is
 * built once, with mmdebstrap, the first time it is asked for.
 */
public final class TemplateCache {

    public static final String DEFAULT_DIR = "/var/cache/capsule/templates";

    private static final ObjectMapper JSON = new ObjectMapper();
    private static final long BUILD_TIMEOUT_SECONDS = 1800;

    private final BuildCache cache;
    private final Object baseLock = new Object();
    private volatile Template base;

    public TemplateCache(Path dir) {
        this.cache = new BuildCache(dir);
    }

    /** The cache at {@code $CAPSULE_CACHE_DIR/templates}, or {@value #DEFAULT_DIR}. */
    public static TemplateCache fromEnvironment() {
        String base = System.getenv("CAPSULE_CACHE_DIR");
        return new TemplateCache(base == null || base.isBlank() ? Path.of(DEFAULT_DIR) : Path.of(base, "templates"));
    }

    public Path dir() {
        return cache.root();
    }

    /** The template built from {@code recipe}, if it is already in the cache. */
    public Optional<Template> find(TemplateRecipe recipe) {
        return cache.contains(recipe.cacheKey()) ? Optional.of(toTemplate(recipe)) : Optional.empty();
    }

    /**
     * The build {@code <name>-<hash>} if it is in the cache, whatever the current recipe is: what sandboxes and
     * snapshots made from an earlier build of a template rest on.
     */
    public Optional<Template> find(String name, String hash) {
        String key = name + "-" + hash;
        if (!cache.contains(key)) {
            return Optional.empty();
        }
        Path entry = cache.entry(key);
        try {
            JsonNode resources = JSON.readTree(entry.resolve("template.json").toFile()).path("resources");
            return Optional.of(new Template(name, hash, entry.resolve("rootfs"),
                    JSON.treeToValue(resources, Resources.class)));
        } catch (IOException | RuntimeException e) {
            throw new IllegalStateException("template build " + key + " in " + dir() + " has no readable "
                    + "template.json: " + e.getMessage(), e);
        }
    }

    /**
     * The base template ({@link TemplateRecipe#base()}), built now (minutes) if no one has, and remembered.
     *
     * @throws RuntimeFailure it could not be built
     */
    public Template base() {
        Template template = base;
        if (template == null) {
            synchronized (baseLock) {
                if (base == null) {
                    try {
                        base = ensure(TemplateRecipe.base());
                    } catch (RuntimeException e) {
                        throw new RuntimeFailure("cannot build the base template in " + dir() + ": "
                                + e.getMessage(), e);
                    }
                }
                template = base;
            }
        }
        return template;
    }

    /** The template built from {@code recipe}, building it now (minutes) if no one has. */
    public Template ensure(TemplateRecipe recipe) {
        cache.ensure(recipe.cacheKey(), target -> build(recipe, target));
        return toTemplate(recipe);
    }

    private Template toTemplate(TemplateRecipe recipe) {
        return new Template(recipe.name(), recipe.hash(), cache.entry(recipe.cacheKey()).resolve("rootfs"),
                recipe.resources());
    }

    private static void build(TemplateRecipe recipe, Path target) throws IOException {
        Path rootfs = target.resolve("rootfs");
        Instant start = Instant.now();
        List<String> command = new ArrayList<>(List.of("mmdebstrap", "--mode=root", "--variant=minbase",
                "--format=directory", "--include=" + String.join(",", recipe.packages())));
        for (String hook : recipe.customizeHooks()) {
            command.add("--customize-hook=" + hook);
        }
        command.addAll(List.of(recipe.suite(), rootfs.toString(), recipe.mirror()));
        Command.Result result = Command.run(command, BUILD_TIMEOUT_SECONDS);
        Files.writeString(target.resolve("build.log"), result.stdout() + result.stderr());
        result.orThrow();
        Duration took = Duration.between(start, Instant.now());

        String packages = Command.run(List.of("chroot", rootfs.toString(), "dpkg-query", "-W",
                "-f=${Package} ${Version}\\n"), 120).orThrow().stdout();
        Files.writeString(target.resolve("packages.txt"), packages);

        ObjectNode manifest = JSON.createObjectNode();
        manifest.put("name", recipe.name());
        manifest.put("hash", recipe.hash());
        manifest.put("suite", recipe.suite());
        manifest.put("mirror", recipe.mirror());
        manifest.putPOJO("packages", recipe.packages());
        manifest.putPOJO("resources", recipe.resources());
        manifest.put("builtAt", start.toString());
        manifest.put("buildSeconds", took.toMillis() / 1000.0);
        try {
            JSON.writerWithDefaultPrettyPrinter().writeValue(target.resolve("template.json").toFile(), manifest);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }
}
