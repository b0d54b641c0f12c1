package dev.capsule.runtime.microvm;

import static org.assertj.core.api.Assertions.assertThat;

import dev.capsule.runtime.NetworkPolicy;
import java.nio.file.Path;
import java.time.Instant;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class VmRecordTest {

    @TempDir Path tmp;

    @Test
    void theWholePolicyIncludingTheProxysCredentialsSurvivesARoundTrip() {
        var policy = new NetworkPolicy(true, List.of("*.example.com"), List.of("0.0.0.0/0"),
                new NetworkPolicy.EgressProxy("198.51.100.9:1080", "u", "secret"));
        var record = new VmRecord("v0000000000000000001", "base", Instant.ofEpochMilli(1_000), policy,
                VmRecord.Status.RUNNING, 2, 512, "console=ttyS0", null);
        var dir = new VmDirectory(tmp);
        record.write(dir);
        // a resume after a restart or reboot re-applies exactly this: the proxy must not be lost on the way
        assertThat(VmRecord.read(dir)).hasValue(record);
    }
}
