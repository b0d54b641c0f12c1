package dev.capsule.runtime.template;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.capsule.runtime.TestEnvironment;
import org.junit.jupiter.api.Test;

import java.nio.file.Files;
import java.nio.file.Path;

import static org.assertj.core.api.Assertions.assertThat;

/** The base template, built with mmdebstrap into the shared cache (minutes, once per machine). */
class BaseTemplateTest {

    @Test
    void baseTemplateHasTheToolsAndTheUserOfE2bsBase() throws Exception {
        Template template = TestEnvironment.baseTemplate();
        Path rootfs = template.rootfs();

        assertThat(Files.readString(rootfs.resolve("etc/passwd")))
                .contains("user:x:1000:1000::/home/user:/bin/bash");
        assertThat(Files.readString(rootfs.resolve("etc/sudoers.d/user"))).contains("user ALL=(ALL:ALL) NOPASSWD: ALL");
        assertThat(Files.getAttribute(rootfs.resolve("home/user"), "unix:uid")).isEqualTo(1000);
        for (String tool : new String[] {"usr/bin/bash", "usr/bin/python3", "usr/bin/pip3", "usr/bin/git",
                "usr/bin/curl", "usr/bin/sudo", "usr/bin/ps", "usr/bin/node", "usr/bin/npm", "usr/bin/ls"}) {
            assertThat(rootfs.resolve(tool)).as(tool).exists();
        }
        assertThat(rootfs.resolve("etc/ssl/certs/ca-certificates.crt")).exists();
        assertThat(rootfs.resolve("usr/lib/locale/C.utf8")).isDirectory();
        assertThat(rootfs.resolve("opt/capsule")).isDirectory();
        // mount targets for the per-sandbox files exist and say nothing of the build host
        assertThat(rootfs.resolve("etc/resolv.conf")).isEmptyFile();
        assertThat(rootfs.resolve("etc/hostname")).isEmptyFile();

        JsonNode manifest = new ObjectMapper().readTree(rootfs.resolveSibling("template.json").toFile());
        assertThat(manifest.path("hash").asText()).isEqualTo(template.hash());
        assertThat(manifest.path("resources").path("cpuCount").asInt()).isEqualTo(2);
        assertThat(Files.readString(rootfs.resolveSibling("packages.txt"))).contains("nodejs ", "python3-pip ");
    }

    @Test
    void aSecondCacheOverTheSameDirectoryReusesTheBuiltTemplate() {
        Template first = TestEnvironment.baseTemplate();
        TemplateCache other = new TemplateCache(TestEnvironment.cacheDir().resolve("templates"));

        assertThat(other.find(TemplateRecipe.base())).contains(first);
        assertThat(other.ensure(TemplateRecipe.base())).isEqualTo(first);
    }

    @Test
    void theRecipeHashIgnoresTheMirrorButNotThePackages() {
        TemplateRecipe a = TemplateRecipe.base("http://deb.debian.org/debian");
        TemplateRecipe b = TemplateRecipe.base("http://mirror.example/debian");
        TemplateRecipe c = new TemplateRecipe("base", a.suite(), a.mirror(), java.util.List.of("bash"),
                a.customizeHooks(), a.resources());

        assertThat(a.hash()).isEqualTo(b.hash()).isNotEqualTo(c.hash());
    }
}
