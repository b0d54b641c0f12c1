package dev.capsule.runtime.network;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import org.junit.jupiter.api.Test;

/** Sharing one configured sandbox network between drivers that run side by side on one server. */
class NetworkConfigTest {

    @Test
    void driversSideBySideGetDisjointPoolsNamesAndInterfacePrefixesNeitherOfWhichStartsTheOther() {
        NetworkConfig net = NetworkConfig.defaults();

        NetworkConfig first = net.share(0, 2, "microvm");
        NetworkConfig second = net.share(1, 2, "oci");

        assertThat(first.name()).isEqualTo("capsule");
        assertThat(first.interfacePrefix()).isEqualTo("csb");
        assertThat(first.pool()).isEqualTo(Ipv4Cidr.parse("10.11.0.0/17"));
        assertThat(second.name()).isEqualTo("capsule_oci");
        assertThat(second.interfacePrefix()).isEqualTo("osb");
        assertThat(second.pool()).isEqualTo(Ipv4Cidr.parse("10.11.128.0/17"));
        assertThat(net.withName("capsule", "ocb").share(1, 2, "oci").interfacePrefix())
                .as("a driver whose letter starts the prefix already").isEqualTo("zcb");
        assertThat(net.share(0, 1, "oci")).as("one driver keeps it all").isEqualTo(net);
    }

    @Test
    void aPoolTooSmallToShareIsRefusedNamingTheSetting() {
        NetworkConfig tiny = NetworkConfig.defaults().withPool(Ipv4Cidr.parse("10.11.0.0/30"));
        assertThatThrownBy(() -> tiny.share(1, 2, "oci")).hasMessageContaining("CAPSULE_NETWORK_POOL");
    }
}
