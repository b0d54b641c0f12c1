package dev.capsule.runtime.template;

import dev.capsule.runtime.Resources;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;
import java.util.List;

/**
 * How to build a template's root filesystem from Debian with mmdebstrap: suite, packages and the shell hooks
 * run on the finished tree. Its {@link #hash()} names the result in the template cache, so changing the recipe
 * builds a new template instead of reusing a stale one. The mirror is not part of the hash: any mirror of the
 * same suite yields an equivalent tree.
 */
public record TemplateRecipe(String name, String suite, String mirror, List<String> packages,
                             List<String> customizeHooks, Resources resources) {

    /** Bumped when the way a recipe is turned into a tree changes (mmdebstrap flags, hook semantics). */
    private static final int FORMAT = 1;

    public static final String DEFAULT_MIRROR = "http://deb.debian.org/debian";

    public TemplateRecipe {
        if (!name.matches("[a-z0-9][a-z0-9_-]{0,62}")) {
            throw new IllegalArgumentException("template name must be lower-case letters, digits, '-' or '_': " + name);
        }
        packages = List.copyOf(packages);
        customizeHooks = List.copyOf(customizeHooks);
    }

    /**
     * The "base" template, as E2B's: Debian bookworm with bash, coreutils, Python 3 with pip, git, curl,
     * CA certificates, sudo, procps, Node.js with npm, and user {@code user} (uid/gid 1000, home /home/user,
     * passwordless sudo). The locale C.UTF-8 is built into Debian's libc.
     */
    public static TemplateRecipe base(String mirror) {
        return new TemplateRecipe("base", "bookworm", mirror,
                List.of("bash", "coreutils", "python3", "python3-pip", "python3-venv", "git", "curl",
                        "ca-certificates", "sudo", "procps", "nodejs", "npm", "iproute2", "less", "unzip"),
                List.of(
                        "chroot \"$1\" useradd --create-home --uid 1000 --user-group --shell /bin/bash user",
                        "echo 'user ALL=(ALL:ALL) NOPASSWD: ALL' > \"$1/etc/sudoers.d/user\""
                                + " && chmod 0440 \"$1/etc/sudoers.d/user\"",
                        "echo 'LANG=C.UTF-8' > \"$1/etc/default/locale\"",
                        // bind-mount targets for the per-sandbox files; empty so a sandbox never sees the build host's
                        "for f in hosts hostname resolv.conf; do rm -f \"$1/etc/$f\"; : > \"$1/etc/$f\"; done",
                        "mkdir -p \"$1/opt/capsule\""),
                Resources.DEFAULT);
    }

    public static TemplateRecipe base() {
        return base(hostMirror());
    }

    /** The Debian mirror this machine's apt uses, so template builds go where the host's package traffic goes. */
    public static String hostMirror() {
        for (Path sources : List.of(Path.of("/etc/apt/sources.list.d/debian.sources"), Path.of("/etc/apt/sources.list"))) {
            try {
                for (String line : Files.readAllLines(sources)) {
                    String trimmed = line.strip();
                    if (trimmed.startsWith("URIs:")) {
                        String uri = trimmed.substring("URIs:".length()).strip().split("\\s+")[0];
                        if (!uri.contains("security")) {
                            return uri;
                        }
                    } else if (trimmed.startsWith("deb ")) {
                        for (String word : trimmed.split("\\s+")) {
                            if (word.startsWith("http") && !word.contains("security")) {
                                return word;
                            }
                        }
                    }
                }
            } catch (IOException ignored) {
                // no such file on this host: try the next, then the default
            }
        }
        return DEFAULT_MIRROR;
    }

    /** A short, stable digest of everything that decides the tree's contents. */
    public String hash() {
        String canonical = "format=" + FORMAT + "\nsuite=" + suite + "\npackages=" + String.join(",", packages)
                + "\nhooks=" + String.join("\n", customizeHooks);
        try {
            byte[] digest = MessageDigest.getInstance("SHA-256").digest(canonical.getBytes(StandardCharsets.UTF_8));
            return HexFormat.of().formatHex(digest, 0, 8);
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }

    /** The template's key in the cache: name and hash. */
    public String cacheKey() {
        return name + "-" + hash();
    }
}
