package dev.capsule.server.api;

import static org.assertj.core.api.Assertions.assertThat;

import dev.capsule.server.store.SandboxState;
import dev.capsule.server.testing.RecordingRuntime;
import dev.capsule.server.testing.TestServer;
import io.vertx.core.json.JsonArray;
import io.vertx.core.json.JsonObject;
import java.net.URLEncoder;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Map;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The REST API over real HTTP against a real server and SQLite store; no runtime driver (starts fail). */
class SandboxApiTest {

    @TempDir Path tmp;
    TestServer s;

    @BeforeEach
    void start() {
        s = new TestServer(tmp.resolve("data"), new RecordingRuntime());
    }

    @AfterEach
    void stop() {
        s.close();
    }

    static String id(int n) {
        return String.format("sbx%017d", n);
    }

    static void assertError(HttpResponse<String> r, int status, String messagePart) {
        assertThat(r.statusCode()).isEqualTo(status);
        JsonObject body = new JsonObject(r.body());
        assertThat(body.getInteger("code")).isEqualTo(status);
        assertThat(body.getString("message")).containsIgnoringCase(messagePart);
    }

    @Test
    void firstStartWritesAKeyFileReadableOnlyByOwner() throws Exception {
        Path keyFile = tmp.resolve("data/api-key");
        assertThat(Files.readString(keyFile).strip()).matches("e2b_[0-9a-f]{40}");
        assertThat(Files.getPosixFilePermissions(keyFile)).hasToString("[OWNER_READ, OWNER_WRITE]");
        assertThat(s.server.initialKey()).isPresent();
        // the key is stored only as a hash
        String stored = s.server.store().jdbi().withHandle(h -> h.createQuery("SELECT id || key_hash FROM api_keys").mapTo(String.class).one());
        assertThat(stored).doesNotContain(s.apiKey.substring(4));
    }

    @Test
    void healthNeedsNoKeyEverythingElseDoes() {
        var health = s.send(HttpRequest.newBuilder(java.net.URI.create(s.url("/health"))).GET().build());
        assertThat(health.statusCode()).isEqualTo(204);

        var missing = s.send(HttpRequest.newBuilder(java.net.URI.create(s.url("/v2/sandboxes"))).GET().build());
        assertError(missing, 401, "X-API-Key");
        var wrong = s.send(HttpRequest.newBuilder(java.net.URI.create(s.url("/v2/sandboxes")))
                .header("X-API-Key", "e2b_" + "0".repeat(40)).GET().build());
        assertError(wrong, 401, "invalid");
        var malformed = s.send(HttpRequest.newBuilder(java.net.URI.create(s.url("/sandboxes/" + id(1))))
                .header("X-API-Key", "not-a-key").DELETE().build());
        assertError(malformed, 401, "invalid");
        // a key whose id matches but whose rest differs
        String sameId = s.apiKey.substring(0, 12) + (s.apiKey.charAt(12) == 'a' ? 'b' : 'a') + s.apiKey.substring(13);
        assertError(s.send(HttpRequest.newBuilder(java.net.URI.create(s.url("/v2/sandboxes"))).header("X-API-Key", sameId).GET().build()), 401, "invalid");

        assertThat(s.get("/v2/sandboxes").statusCode()).isEqualTo(200);
        // header name is case-insensitive, as the JS SDK sends X-API-KEY
        assertThat(s.send(HttpRequest.newBuilder(java.net.URI.create(s.url("/v2/sandboxes"))).header("x-api-key", s.apiKey).GET().build())
                .statusCode()).isEqualTo(200);
    }

    @Test
    void createdKeysWorkAndRevokedKeysStop() {
        var keys = s.server.apiKeys();
        var created = keys.create("ci");
        var withNew = HttpRequest.newBuilder(java.net.URI.create(s.url("/v2/sandboxes"))).header("X-API-Key", created.key()).GET().build();
        assertThat(s.send(withNew).statusCode()).isEqualTo(200);
        assertThat(keys.list()).extracting(k -> k.name()).containsExactly("initial", "ci");
        assertThat(keys.revoke(created.id())).isTrue();
        assertThat(keys.revoke(created.id())).isFalse();
        assertError(s.send(withNew), 401, "revoked");
        assertThat(keys.list()).filteredOn(k -> k.id().equals(created.id())).singleElement().satisfies(k -> assertThat(k.revoked()).isTrue());
    }

    @Test
    void createValidatesItsBody() {
        assertError(s.post("/sandboxes", "{\"templateID\": "), 400, "not valid JSON");
        assertError(s.post("/v2/sandboxes", "[1,2]"), 400, "JSON object");
        assertError(s.post("/v2/sandboxes", ""), 400, "missing");
        assertError(s.post("/v2/sandboxes", "{}"), 400, "templateID");
        assertError(s.post("/v2/sandboxes", "{\"templateID\": 7}"), 400, "templateID");
        assertError(s.post("/v2/sandboxes", "{\"templateID\":\"base\",\"timeout\":\"soon\"}"), 400, "timeout");
        assertError(s.post("/v2/sandboxes", "{\"templateID\":\"base\",\"timeout\":3601}"), 400, "maximum of 3600");
        assertError(s.post("/v2/sandboxes", "{\"templateID\":\"base\",\"timeout\":-1}"), 400, "negative");
        // 2^64 + 300: must not wrap around to 300
        assertError(s.post("/v2/sandboxes", "{\"templateID\":\"base\",\"timeout\":18446744073709551916}"), 400, "out of range");
        assertError(s.post("/v2/sandboxes", "{\"templateID\":\"base\",\"timeout\":9223372036854775808}"), 400, "out of range");
        assertError(s.post("/v2/sandboxes", "{\"templateID\":\"base\",\"metadata\":{\"a\":1}}"), 400, "metadata.a");
        assertError(s.post("/v2/sandboxes", "{\"templateID\":\"base\",\"envVars\":[]}"), 400, "envVars");
        assertError(s.post("/v2/sandboxes", "{\"templateID\":\"base\",\"autoResume\":{\"enabled\":true}}"), 400, "autoPause");
        assertError(s.post("/v2/sandboxes", "{\"templateID\":\"no-such-template\"}"), 404, "'no-such-template'");
        assertThat(s.server.store().allSandboxes()).isEmpty();
    }

    @Test
    void oversizeBodiesAre413() {
        String big = "{\"templateID\":\"base\",\"metadata\":{\"x\":\"" + "a".repeat((int) SandboxApi.MAX_BODY_BYTES) + "\"}}";
        assertError(s.post("/v2/sandboxes", big), 413, "larger than");
    }

    @Test
    void aFailedStartLeavesNothingBehind() {
        var r = s.post("/v2/sandboxes", "{\"templateID\":\"base\",\"metadata\":{\"k\":\"v\"}}");
        assertError(r, 500, "no runtime driver in this test");
        assertThat(s.runtime.started).hasSize(1);
        assertThat(s.runtime.destroyed).containsExactly(s.runtime.started.getFirst().sandboxId());
        assertThat(s.server.store().allSandboxes()).isEmpty();
    }

    @Test
    void unknownSandboxesAre404Everywhere() {
        assertError(s.get("/sandboxes/" + id(9)), 404, id(9));
        assertError(s.delete("/sandboxes/" + id(9)), 404, "not found");
        assertError(s.post("/sandboxes/" + id(9) + "/timeout", "{\"timeout\":10}"), 404, "not found");
        assertError(s.post("/sandboxes/" + id(9) + "/connect", "{\"timeout\":10}"), 404, "not found");
        assertError(s.post("/v2/sandboxes/" + id(9) + "/connect", "{}"), 404, "not found");
        assertError(s.post("/sandboxes/" + id(9) + "/refreshes", ""), 404, "not found");
        assertError(s.get("/sandboxes/..%2F..%2Fetc"), 404, "not found");
        assertError(s.get("/no/such/endpoint"), 404, "no endpoint");
    }

    @Test
    void detailHasE2bShapeIncludingTheAccessToken() {
        s.insertSandbox(id(1), SandboxState.RUNNING, Instant.parse("2025-01-02T03:04:05Z"), Map.of("owner", "alice"), "127.0.0.1");
        var r = s.get("/sandboxes/" + id(1));
        assertThat(r.statusCode()).isEqualTo(200);
        JsonObject d = new JsonObject(r.body());
        assertThat(d.getString("sandboxID")).isEqualTo(id(1));
        assertThat(d.getString("templateID")).isEqualTo("base");
        assertThat(d.getString("alias")).isEqualTo("base");
        assertThat(d.getString("clientID")).isEqualTo("6532622b");
        assertThat(d.getString("envdVersion")).isEqualTo("0.6.13");
        assertThat(d.getString("envdAccessToken")).isEqualTo("token-" + id(1));
        assertThat(d.getString("startedAt")).isEqualTo("2025-01-02T03:04:05Z");
        assertThat(Instant.parse(d.getString("endAt"))).isAfter(Instant.now());
        assertThat(d.getInteger("cpuCount")).isEqualTo(2);
        assertThat(d.getInteger("memoryMB")).isEqualTo(512);
        assertThat(d.getInteger("diskSizeMB")).isEqualTo(4096);
        assertThat(d.getString("state")).isEqualTo("running");
        assertThat(d.getJsonObject("metadata").getMap()).isEqualTo(Map.of("owner", "alice"));
        assertThat(d.getJsonObject("lifecycle").getMap()).isEqualTo(Map.of("autoResume", false, "onTimeout", "kill"));
        assertThat(d.getBoolean("allowInternetAccess")).isTrue();
        assertThat(d.getString("runtime")).isEqualTo("oci");
    }

    @Test
    void timeoutCanShortenConnectOnlyExtendsRefreshOnlyExtends() {
        s.insertSandbox(id(2), SandboxState.RUNNING, Instant.now(), Map.of(), "127.0.0.1");
        assertThat(s.post("/sandboxes/" + id(2) + "/timeout", "{\"timeout\":1000}").statusCode()).isEqualTo(204);
        Instant longEnd = endAt(id(2));

        var c = s.post("/sandboxes/" + id(2) + "/connect", "{\"timeout\":10}");
        assertThat(c.statusCode()).isEqualTo(200);
        assertThat(new JsonObject(c.body()).getString("sandboxID")).isEqualTo(id(2));
        assertThat(endAt(id(2))).isEqualTo(longEnd); // not shortened
        assertThat(s.post("/sandboxes/" + id(2) + "/refreshes", "{\"duration\":10}").statusCode()).isEqualTo(204);
        assertThat(endAt(id(2))).isEqualTo(longEnd);

        assertThat(s.post("/sandboxes/" + id(2) + "/timeout", "{\"timeout\":100}").statusCode()).isEqualTo(204);
        Instant shortEnd = endAt(id(2));
        assertThat(shortEnd).isBefore(longEnd); // shortened

        assertThat(s.post("/v2/sandboxes/" + id(2) + "/connect", "{\"timeout\":2000}").statusCode()).isEqualTo(200);
        assertThat(endAt(id(2))).isAfter(shortEnd); // extended
        assertThat(s.post("/v2/sandboxes/" + id(2) + "/connect", "").statusCode()).isEqualTo(200); // v2 timeout optional

        assertError(s.post("/sandboxes/" + id(2) + "/connect", "{}"), 400, "timeout");
        assertError(s.post("/sandboxes/" + id(2) + "/timeout", "{}"), 400, "timeout");
        assertError(s.post("/sandboxes/" + id(2) + "/timeout", "{\"timeout\":999999}"), 400, "maximum");
        assertError(s.post("/sandboxes/" + id(2) + "/refreshes", "{\"duration\":3601}"), 400, "duration");
    }

    private Instant endAt(String id) {
        return Instant.parse(new JsonObject(s.get("/sandboxes/" + id).body()).getString("endAt"));
    }

    @Test
    void deleteIs204ThenAnd404() {
        s.insertSandbox(id(3), SandboxState.RUNNING, Instant.now(), Map.of(), "127.0.0.1");
        assertThat(s.delete("/sandboxes/" + id(3)).statusCode()).isEqualTo(204);
        assertThat(s.runtime.destroyed).containsExactly(id(3));
        assertError(s.delete("/sandboxes/" + id(3)), 404, "not found");
        assertError(s.get("/sandboxes/" + id(3)), 404, "not found");
    }

    @Test
    void listFiltersByStateAndDoubleEncodedMetadataAndPages() {
        Instant t0 = Instant.parse("2025-01-01T00:00:00Z");
        for (int i = 0; i < 12; i++) {
            s.insertSandbox(id(i), i < 3 ? SandboxState.PAUSED : SandboxState.RUNNING, t0.plusSeconds(i),
                    Map.of("team", i % 2 == 0 ? "a&b=c" : "plain", "n", String.valueOf(i)), "127.0.0.1");
        }
        // no state: running + paused, newest first
        var all = s.get("/v2/sandboxes");
        assertThat(all.statusCode()).isEqualTo(200);
        assertThat(all.headers().firstValue("X-Total-Running")).contains("9");
        assertThat(all.headers().firstValue("X-Next-Token")).isEmpty();
        var items = new JsonArray(all.body());
        assertThat(items).hasSize(12);
        assertThat(items.getJsonObject(0).getString("sandboxID")).isEqualTo(id(11));
        assertThat(items.getJsonObject(0).containsKey("envdAccessToken")).isFalse();

        var paused = new JsonArray(s.get("/v2/sandboxes?state=paused").body());
        assertThat(paused).hasSize(3).allSatisfy(o -> assertThat(((JsonObject) o).getString("state")).isEqualTo("paused"));
        assertThat(new JsonArray(s.get("/v2/sandboxes?state=running,paused").body())).hasSize(12);

        // what the SDK sends: URLSearchParams-encoded pairs, encoded once more as the query value
        String pairs = "team=" + URLEncoder.encode("a&b=c", StandardCharsets.UTF_8);
        String q = URLEncoder.encode(pairs, StandardCharsets.UTF_8);
        var filtered = new JsonArray(s.get("/v2/sandboxes?state=running&metadata=" + q).body());
        assertThat(filtered).extracting(o -> ((JsonObject) o).getJsonObject("metadata").getString("team")).containsOnly("a&b=c");
        assertThat(filtered).hasSize(4); // 4, 6, 8, 10
        String two = URLEncoder.encode("team=plain&n=5", StandardCharsets.UTF_8);
        assertThat(new JsonArray(s.get("/v2/sandboxes?metadata=" + two).body())).singleElement()
                .satisfies(o -> assertThat(((JsonObject) o).getString("sandboxID")).isEqualTo(id(5)));

        // pagination: pages of 5, ascending, each sandbox once
        var seen = new ArrayList<String>();
        String token = null;
        int pages = 0;
        do {
            var page = s.get("/v2/sandboxes?order=asc&limit=5" + (token == null ? "" : "&nextToken=" + token));
            assertThat(page.statusCode()).isEqualTo(200);
            new JsonArray(page.body()).forEach(o -> seen.add(((JsonObject) o).getString("sandboxID")));
            token = page.headers().firstValue("X-Next-Token").orElse(null);
            pages++;
        } while (token != null);
        assertThat(pages).isEqualTo(3);
        assertThat(seen).containsExactly(java.util.stream.IntStream.range(0, 12).mapToObj(SandboxApiTest::id).toArray(String[]::new));

        // deprecated list: running only
        var old = new JsonArray(s.get("/sandboxes").body());
        assertThat(old).hasSize(9);

        assertError(s.get("/v2/sandboxes?limit=0"), 400, "limit");
        assertError(s.get("/v2/sandboxes?limit=101"), 400, "limit");
        assertError(s.get("/v2/sandboxes?limit=ten"), 400, "limit");
        assertError(s.get("/v2/sandboxes?state=dead"), 400, "state");
        assertError(s.get("/v2/sandboxes?order=up"), 400, "order");
        assertError(s.get("/v2/sandboxes?nextToken=garbage!"), 400, "nextToken");
        assertError(s.get("/v2/sandboxes?metadata=novalue"), 400, "metadata");
    }

    @Test
    void concurrentKillsOfOneSandboxSucceedOnce() throws Exception {
        s.insertSandbox(id(4), SandboxState.RUNNING, Instant.now(), Map.of(), "127.0.0.1");
        var results = new java.util.concurrent.ConcurrentLinkedQueue<Integer>();
        try (var pool = java.util.concurrent.Executors.newVirtualThreadPerTaskExecutor()) {
            for (int i = 0; i < 10; i++) pool.submit(() -> results.add(s.delete("/sandboxes/" + id(4)).statusCode()));
        }
        assertThat(results).containsOnly(204, 404).filteredOn(c -> c == 204).hasSize(1);
        assertThat(s.runtime.destroyed).containsExactly(id(4));
    }
}
