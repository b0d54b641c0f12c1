package dev.capsule.runtime.oci;

import static org.assertj.core.api.Assertions.assertThat;

import dev.capsule.runtime.NetworkPolicy;
import dev.capsule.runtime.Resources;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Instant;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class SandboxManifestTest {

    @TempDir Path tmp;

    @Test
    void theWholePolicyIncludingTheProxysCredentialsSurvivesARoundTrip() {
        var policy = new NetworkPolicy(false, List.of("api.example.com", "198.51.100.7"), List.of("0.0.0.0/0"),
                new NetworkPolicy.EgressProxy("198.51.100.9:1080", "u", "secret"));
        var manifest = new SandboxManifest("m0000000000000000001", "base", "base", "abc", List.of("layer1"),
                new Resources(2, 512, 4096), Instant.ofEpochMilli(1_000), policy);
        var dir = new SandboxDirectory(tmp);
        manifest.write(dir);
        // a restarted driver or a cold boot re-applies exactly this: the proxy must not be lost on the way
        assertThat(SandboxManifest.read(dir, Resources.DEFAULT)).hasValue(manifest);
    }

    @Test
    void aRecordWithoutAPolicyIsOpenAndADamagedOneIsNone() throws Exception {
        var dir = new SandboxDirectory(tmp);
        Files.writeString(dir.metadata(), "{\"sandboxId\":\"x\",\"templateId\":\"base\",\"startedAt\":\"1970-01-01T00:00:01Z\"}");
        assertThat(SandboxManifest.read(dir, Resources.DEFAULT)).hasValueSatisfying(m ->
                assertThat(m.network()).isEqualTo(NetworkPolicy.OPEN));
        Files.writeString(dir.metadata(), "{not json");
        assertThat(SandboxManifest.read(dir, Resources.DEFAULT)).isEmpty();
    }
}
