package dev.capsule.server.lifecycle;

import static org.assertj.core.api.Assertions.assertThat;

import dev.capsule.runtime.Drivers;
import dev.capsule.runtime.SandboxInstance;
import dev.capsule.server.testing.EnvdStandIn;
import dev.capsule.server.testing.RecordingRuntime;
import dev.capsule.server.testing.TestServer;
import io.vertx.core.json.JsonObject;
import java.nio.file.Path;
import java.time.Instant;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * One server, two drivers side by side ({@link Drivers}): each sandbox runs on the driver its create request (or its
 * template, or the server's default) names, every later call about it goes to that driver, its snapshots start
 * only there, getInfo names it, and a restart adopts each driver's sandboxes and removes each driver's orphans.
 * Both drivers are recording stand-ins; the server's envd stand-in is an HTTP server on loopback.
 */
class DriverRoutingTest {

    @TempDir Path tmp;
    EnvdStandIn envd;
    RecordingRuntime oci;
    RecordingRuntime microvm;
    TestServer s;

    @BeforeEach
    void start() throws Exception {
        envd = new EnvdStandIn();
        oci = envd.runtime;
        microvm = new RecordingRuntime("microvm");
        microvm.onStart = spec -> envd.address;
        s = server();
    }

    private TestServer server() {
        return new TestServer(tmp.resolve("data"), new Drivers(List.of(oci, microvm)), oci);
    }

    @AfterEach
    void stop() throws Exception {
        if (s != null) s.close();
        envd.close();
    }

    private JsonObject create(String body) {
        var r = s.post("/sandboxes", body);
        assertThat(r.statusCode()).as(r.body()).isEqualTo(201);
        return new JsonObject(r.body());
    }

    private String runtimeOf(String id) {
        var r = s.get("/sandboxes/" + id);
        assertThat(r.statusCode()).as(r.body()).isEqualTo(200);
        return new JsonObject(r.body()).getString("runtime");
    }

    @Test
    void eachSandboxRunsAndStaysOnTheDriverItsCreateNamed() {
        String onOci = create("{\"templateID\":\"base\"}").getString("sandboxID");
        String onVm = create("{\"templateID\":\"base\",\"runtime\":\"microvm\"}").getString("sandboxID");

        assertThat(oci.started).extracting(spec -> spec.sandboxId()).containsExactly(onOci);
        assertThat(microvm.started).extracting(spec -> spec.sandboxId()).containsExactly(onVm);
        assertThat(runtimeOf(onOci)).isEqualTo("oci");
        assertThat(runtimeOf(onVm)).isEqualTo("microvm");

        assertThat(s.post("/sandboxes/" + onVm + "/pause", "{}").statusCode()).isEqualTo(204);
        assertThat(s.post("/sandboxes/" + onVm + "/connect", "{\"timeout\":60}").statusCode()).isEqualTo(201);
        assertThat(microvm.transitions).containsExactly("pause:" + onVm, "resume:" + onVm);
        assertThat(oci.transitions).isEmpty();

        var snapshot = s.post("/sandboxes/" + onVm + "/snapshots", "{\"name\":\"vm-snap\"}");
        assertThat(snapshot.statusCode()).as(snapshot.body()).isEqualTo(201);
        assertThat(microvm.snapshotsTaken).hasSize(1);
        assertThat(oci.snapshotsTaken).isEmpty();
        String fromSnapshot = create("{\"templateID\":\"vm-snap\"}").getString("sandboxID");
        assertThat(runtimeOf(fromSnapshot)).as("a snapshot starts on the driver that took it").isEqualTo("microvm");
        var elsewhere = s.post("/sandboxes", "{\"templateID\":\"vm-snap\",\"runtime\":\"oci\"}");
        assertThat(elsewhere.statusCode()).isEqualTo(400);
        assertThat(new JsonObject(elsewhere.body()).getString("message")).contains("microvm");

        var unknown = s.post("/sandboxes", "{\"templateID\":\"base\",\"runtime\":\"firecracker\"}");
        assertThat(unknown.statusCode()).isEqualTo(400);
        assertThat(new JsonObject(unknown.body()).getString("message")).contains("firecracker", "oci", "microvm");

        assertThat(s.send(s.request("/sandboxes/" + onVm).DELETE().build()).statusCode()).isEqualTo(204);
        assertThat(microvm.destroyed).containsExactly(onVm);
        assertThat(s.send(s.request("/sandboxes/" + onOci).DELETE().build()).statusCode()).isEqualTo(204);
        assertThat(oci.destroyed).containsExactly(onOci);
    }

    @Test
    void aRestartAdoptsEachDriversSandboxesAndRemovesEachDriversOrphans() {
        String onOci = create("{\"templateID\":\"base\"}").getString("sandboxID");
        String onVm = create("{\"templateID\":\"base\",\"runtime\":\"microvm\"}").getString("sandboxID");
        assertThat(s.post("/sandboxes/" + onVm + "/pause", "{}").statusCode()).isEqualTo(204);
        s.close();
        s = null;
        String orphan = "orphan00000000000001";
        microvm.onHost.put(orphan, new SandboxInstance(orphan, "base", envd.address, Instant.now()));

        s = server();

        assertThat(new JsonObject(s.get("/sandboxes/" + onOci).body()).getString("state")).isEqualTo("running");
        assertThat(new JsonObject(s.get("/sandboxes/" + onVm).body()).getString("state")).isEqualTo("paused");
        assertThat(microvm.destroyed).containsExactly(orphan);
        assertThat(oci.destroyed).isEmpty();
        assertThat(s.post("/sandboxes/" + onVm + "/connect", "{\"timeout\":60}").statusCode()).isEqualTo(201);
        assertThat(microvm.transitions).containsExactly("pause:" + onVm, "resume:" + onVm);
        assertThat(oci.transitions).isEmpty();
    }
}
