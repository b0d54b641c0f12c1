package dev.capsule.cli;

import dev.capsule.runtime.oci.OciRuntimeConfig;
import dev.capsule.server.config.ConfigException;
import org.junit.jupiter.api.Test;

import java.nio.file.Path;
import java.util.Map;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

/** A second server on one host gets its own runc root and sandbox network from CAPSULE_* variables. */
class ServerIsolationTest {

    @Test
    void withoutVariablesTheDefaultsApply() {
        OciRuntimeConfig d = OciRuntimeConfig.defaults();
        assertThat(ServerCommand.isolated(d, Map.of())).isEqualTo(d);
    }

    @Test
    void variablesSetRuncRootAndNetwork() {
        OciRuntimeConfig c = ServerCommand.isolated(OciRuntimeConfig.defaults(), Map.of(
                "CAPSULE_RUNC_ROOT", "/run/other/runc", "CAPSULE_NETWORK_NAME", "other",
                "CAPSULE_NETWORK_INTERFACE_PREFIX", "oth", "CAPSULE_NETWORK_POOL", "10.213.0.0/20"));
        assertThat(c.runcRoot()).isEqualTo(Path.of("/run/other/runc"));
        assertThat(c.network().name()).isEqualTo("other");
        assertThat(c.network().interfacePrefix()).isEqualTo("oth");
        assertThat(c.network().pool().toString()).isEqualTo("10.213.0.0/20");
    }

    @Test
    void aNameWithoutAnInterfacePrefixIsRefused() {
        assertThatThrownBy(() -> ServerCommand.isolated(OciRuntimeConfig.defaults(),
                Map.of("CAPSULE_NETWORK_NAME", "other")))
                .isInstanceOf(ConfigException.class).hasMessageContaining("CAPSULE_NETWORK_INTERFACE_PREFIX");
    }
}
