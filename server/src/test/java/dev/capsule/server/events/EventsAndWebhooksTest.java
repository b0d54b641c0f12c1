package dev.capsule.server.events;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import dev.capsule.server.testing.EnvdStandIn;
import dev.capsule.server.testing.Receiver;
import dev.capsule.server.testing.TestServer;
import io.vertx.core.json.JsonArray;
import io.vertx.core.json.JsonObject;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Lifecycle events and webhooks through the real API: the events API's shape, order, paging and filters; webhook
 * CRUD and its validation; deliveries in order with valid signatures, retried with the same delivery id, kept
 * across a restart, and never holding up a transition. The driver is the recording stand-in, envd a real HTTP
 * server, the receiver a real HTTP server.
 */
class EventsAndWebhooksTest {

    @TempDir Path tmp;
    EnvdStandIn envd;
    Receiver receiver;
    TestServer s;

    @BeforeEach
    void start() throws Exception {
        envd = new EnvdStandIn();
        receiver = new Receiver(envd.vertx);
        s = new TestServer(tmp.resolve("data"), envd.runtime);
    }

    @AfterEach
    void stop() throws Exception {
        if (s != null) s.close();
        receiver.close();
        envd.close();
    }

    private String create() {
        var r = s.post("/v2/sandboxes", "{\"templateID\":\"base\"}");
        assertThat(r.statusCode()).as(r.body()).isEqualTo(201);
        return new JsonObject(r.body()).getString("sandboxID");
    }

    private void ok(HttpResponse<String> r, int status) {
        assertThat(r.statusCode()).as(r.body()).isEqualTo(status);
    }

    private JsonArray events(String query) {
        var r = s.get("/events/sandboxes" + query);
        ok(r, 200);
        return new JsonArray(r.body());
    }

    private static List<String> types(JsonArray events) {
        return events.stream().map(e -> ((JsonObject) e).getString("type")).toList();
    }

    private HttpResponse<String> patch(String path, String json) {
        return s.send(s.request(path).header("Content-Type", "application/json")
                .method("PATCH", HttpRequest.BodyPublishers.ofString(json)).build());
    }

    private String webhook(String url, String secret, String events) {
        var r = s.post("/events/webhooks", "{\"name\":\"test\",\"url\":\"" + url + "\",\"enabled\":true,\"events\":" + events
                + ",\"signatureSecret\":\"" + secret + "\"}");
        ok(r, 201);
        return new JsonObject(r.body()).getString("id");
    }

    private static final String ALL = "[\"sandbox.lifecycle.created\",\"sandbox.lifecycle.updated\",\"sandbox.lifecycle.paused\","
            + "\"sandbox.lifecycle.resumed\",\"sandbox.lifecycle.killed\"]";

    /** create, set a timeout, pause, resume, kill: the sequence every test here drives. */
    private String lifecycle() {
        String id = create();
        ok(s.post("/sandboxes/" + id + "/timeout", "{\"timeout\":600}"), 204);
        ok(s.post("/sandboxes/" + id + "/pause", "{}"), 204);
        ok(s.post("/sandboxes/" + id + "/connect", "{\"timeout\":300}"), 201);
        ok(s.delete("/sandboxes/" + id), 204);
        return id;
    }

    @Test
    void everyTransitionIsAnEventInE2bsShapeAlsoAfterTheKill() {
        String id = lifecycle();
        JsonArray newestFirst = events("/" + id);
        assertThat(types(newestFirst)).containsExactly("sandbox.lifecycle.killed", "sandbox.lifecycle.resumed",
                "sandbox.lifecycle.paused", "sandbox.lifecycle.updated", "sandbox.lifecycle.created");
        JsonArray oldestFirst = events("/" + id + "?orderAsc=true");
        assertThat(types(oldestFirst)).containsExactly("sandbox.lifecycle.created", "sandbox.lifecycle.updated",
                "sandbox.lifecycle.paused", "sandbox.lifecycle.resumed", "sandbox.lifecycle.killed");

        JsonObject created = oldestFirst.getJsonObject(0);
        assertThat(created.fieldNames()).containsExactlyInAnyOrder("version", "id", "type", "eventData", "sandboxBuildId",
                "sandboxExecutionId", "sandboxId", "sandboxTeamId", "sandboxTemplateId", "timestamp");
        assertThat(created.getString("version")).isEqualTo("v1");
        assertThat(created.getString("sandboxId")).isEqualTo(id);
        assertThat(created.getValue("eventData")).isNull();
        assertThat(java.time.Instant.parse(created.getString("timestamp"))).isNotNull();
        // the killed event still names the template though the sandbox's row is gone
        assertThat(oldestFirst.stream().map(e -> ((JsonObject) e).getString("sandboxTemplateId"))).containsOnly("base");
        assertThat(oldestFirst.getJsonObject(1).getJsonObject("eventData").getString("set_timeout")).isNotBlank();
        // one execution per run: create starts one, the pause belongs to it, the resume starts another
        String first = created.getString("sandboxExecutionId");
        assertThat(oldestFirst.getJsonObject(2).getString("sandboxExecutionId")).isEqualTo(first);
        String second = oldestFirst.getJsonObject(3).getString("sandboxExecutionId");
        assertThat(second).isNotEqualTo(first);
        assertThat(oldestFirst.getJsonObject(4).getString("sandboxExecutionId")).isEqualTo(second);
    }

    @Test
    void eventsArePagedAndFiltered() {
        String a = lifecycle();
        String b = lifecycle();
        assertThat(events("").size()).isEqualTo(10); // default limit 10, across sandboxes, newest first
        assertThat(events("").getJsonObject(0).getString("sandboxId")).isEqualTo(b);
        assertThat(types(events("?limit=2&orderAsc=true"))).containsExactly("sandbox.lifecycle.created", "sandbox.lifecycle.updated");
        JsonArray page2 = events("?limit=3&offset=3&orderAsc=true");
        assertThat(types(page2)).containsExactly("sandbox.lifecycle.resumed", "sandbox.lifecycle.killed", "sandbox.lifecycle.created");
        assertThat(page2.getJsonObject(1).getString("sandboxId")).isEqualTo(a);
        assertThat(page2.getJsonObject(2).getString("sandboxId")).isEqualTo(b);
        assertThat(events("?offset=100")).isEmpty();
        JsonArray kills = events("?types=sandbox.lifecycle.killed&types=sandbox.lifecycle.created&orderAsc=true");
        assertThat(types(kills)).containsExactly("sandbox.lifecycle.created", "sandbox.lifecycle.killed",
                "sandbox.lifecycle.created", "sandbox.lifecycle.killed");
        assertThat(types(events("/" + a + "?types=sandbox.lifecycle.paused"))).containsExactly("sandbox.lifecycle.paused");
        assertThat(events("/" + "x".repeat(20))).isEmpty();

        for (String bad : List.of("?limit=0", "?limit=101", "?limit=ten", "?offset=-1", "?orderAsc=maybe", "?types=sandbox.lifecycle.exploded")) {
            var r = s.get("/events/sandboxes" + bad);
            assertThat(r.statusCode()).as(bad).isEqualTo(400);
            assertThat(new JsonObject(r.body()).getInteger("code")).isEqualTo(400);
            assertThat(new JsonObject(r.body()).getString("message")).as(bad).containsAnyOf("'limit'", "'offset'", "'orderAsc'", "'types'");
        }
        var noKey = s.send(HttpRequest.newBuilder(java.net.URI.create(s.url("/events/sandboxes"))).GET().build());
        assertThat(noKey.statusCode()).isEqualTo(401);
    }

    @Test
    void webhooksAreCreatedListedUpdatedAndDeletedWithoutEverShowingTheSecret() {
        String id = webhook(receiver.url(), "s3cret-value", "[\"sandbox.lifecycle.created\"]");
        var one = s.get("/events/webhooks/" + id);
        ok(one, 200);
        JsonObject hook = new JsonObject(one.body());
        assertThat(hook.fieldNames()).containsExactlyInAnyOrder("id", "teamId", "name", "createdAt", "enabled", "url", "events");
        assertThat(one.body()).doesNotContain("s3cret-value");
        assertThat(s.get("/events/webhooks").body()).contains(id).doesNotContain("s3cret-value");
        // sealed in the store too
        String stored = s.server.store().read(h -> h.createQuery("SELECT secret FROM webhooks").mapTo(String.class).one());
        assertThat(stored).doesNotContain("s3cret-value");

        var patched = patch("/events/webhooks/" + id, "{\"enabled\":false,\"events\":[\"sandbox.lifecycle.killed\"]}");
        ok(patched, 200);
        assertThat(new JsonObject(patched.body()).getBoolean("enabled")).isFalse();
        assertThat(new JsonObject(patched.body()).getJsonArray("events")).containsExactly("sandbox.lifecycle.killed");
        assertThat(new JsonObject(patched.body()).getString("url")).isEqualTo(receiver.url());

        ok(s.delete("/events/webhooks/" + id), 200);
        ok(s.get("/events/webhooks/" + id), 404);
        ok(s.delete("/events/webhooks/" + id), 404);
        ok(patch("/events/webhooks/" + id, "{\"enabled\":true}"), 404);
        ok(s.get("/events/webhooks/" + id + "/deliveries"), 404);
    }

    @Test
    void webhookInputIsValidated() {
        String good = "\"name\":\"n\",\"enabled\":true,\"signatureSecret\":\"x\"";
        var cases = java.util.Map.of(
                "{" + good + ",\"url\":\"ftp://example.com/x\",\"events\":[\"sandbox.lifecycle.created\"]}", "http or https",
                "{" + good + ",\"url\":\"not a url\",\"events\":[\"sandbox.lifecycle.created\"]}", "'url'",
                "{" + good + ",\"url\":\"http://example.com\",\"events\":[\"sandbox.lifecycle.exploded\"]}", "unknown type",
                "{" + good + ",\"url\":\"http://example.com\",\"events\":[]}", "at least one",
                "{" + good + ",\"url\":\"http://example.com\",\"events\":\"sandbox.lifecycle.created\"}", "'events'",
                "{\"name\":\"n\",\"url\":\"http://example.com\",\"events\":[\"sandbox.lifecycle.created\"]}", "'signatureSecret'",
                "{" + good + ",\"url\":\"http://example.com\",\"events\":[\"sandbox.lifecycle.created\"],\"enabled\":\"yes\"}", "'enabled'",
                "[1]", "JSON object");
        cases.forEach((body, reason) -> {
            var r = s.post("/events/webhooks", body);
            assertThat(r.statusCode()).as(body).isEqualTo(400);
            assertThat(new JsonObject(r.body()).getString("message")).as(body).contains(reason);
        });
        String id = webhook(receiver.url(), "x", "[\"sandbox.lifecycle.created\"]");
        assertThat(patch("/events/webhooks/" + id, "{\"url\":\"gopher://x\"}").statusCode()).isEqualTo(400);
        assertThat(s.get("/events/webhooks").body()).doesNotContain("gopher");
    }

    @Test
    void aReceiverGetsEveryEventInOrderSignedWithTheSecret() {
        String hook = webhook(receiver.url(), "top-secret", ALL);
        String id = lifecycle();
        await().atMost(Duration.ofSeconds(30)).until(() -> receiver.requests.size() >= 5);
        var got = List.copyOf(receiver.requests);
        assertThat(got).hasSize(5);
        assertThat(got.stream().map(r -> new JsonObject(r.body()).getString("type"))).containsExactly(
                "sandbox.lifecycle.created", "sandbox.lifecycle.updated", "sandbox.lifecycle.paused",
                "sandbox.lifecycle.resumed", "sandbox.lifecycle.killed");
        for (var r : got) {
            assertThat(r.header("e2b-webhook-id")).isEqualTo(hook);
            assertThat(r.header("e2b-signature-version")).isEqualTo("v1");
            assertThat(r.header("e2b-delivery-id")).isNotBlank();
            assertThat(r.header("e2b-signature")).isEqualTo(signature("top-secret", r.body()));
            assertThat(new JsonObject(r.body()).getString("sandboxId")).isEqualTo(id);
        }
        // the delivery log says so
        JsonArray log = new JsonArray(s.get("/events/webhooks/" + hook + "/deliveries").body());
        assertThat(log).hasSize(5);
        assertThat(log.stream().map(d -> ((JsonObject) d).getString("status"))).containsOnly("delivered");
    }

    /** The signature computed independently of the server's code: base64url(sha256(secret + body)), no padding. */
    static String signature(String secret, String body) {
        try {
            byte[] digest = java.security.MessageDigest.getInstance("SHA-256")
                    .digest((secret + body).getBytes(java.nio.charset.StandardCharsets.UTF_8));
            return java.util.Base64.getUrlEncoder().withoutPadding().encodeToString(digest);
        } catch (java.security.NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }

    @Test
    void refusedDeliveriesAreRetriedWithTheSameDeliveryIdAndLaterEventsWait() {
        var refusals = new java.util.concurrent.atomic.AtomicInteger(2);
        receiver.answer = r -> refusals.getAndDecrement() > 0 ? 503 : 204;
        String hook = webhook(receiver.url(), "k", ALL);
        String id = create();
        ok(s.delete("/sandboxes/" + id), 204);
        await().atMost(Duration.ofSeconds(30)).until(() -> receiver.requests.size() >= 4);
        var got = List.copyOf(receiver.requests);
        // created refused twice, then delivered, then killed: order kept behind the retries
        assertThat(got.stream().map(r -> new JsonObject(r.body()).getString("type"))).containsExactly(
                "sandbox.lifecycle.created", "sandbox.lifecycle.created", "sandbox.lifecycle.created", "sandbox.lifecycle.killed");
        assertThat(got.subList(0, 3).stream().map(r -> r.header("e2b-delivery-id")).distinct()).hasSize(1);
        assertThat(got.get(0).body()).isEqualTo(got.get(2).body());
        assertThat(got.get(3).header("e2b-delivery-id")).isNotEqualTo(got.get(0).header("e2b-delivery-id"));
        JsonArray log = new JsonArray(s.get("/events/webhooks/" + hook + "/deliveries").body());
        JsonObject createdDelivery = log.stream().map(JsonObject.class::cast)
                .filter(d -> d.getString("eventType").equals("sandbox.lifecycle.created")).findFirst().orElseThrow();
        assertThat(createdDelivery.getString("status")).isEqualTo("delivered");
        assertThat(createdDelivery.getInteger("attempts")).isEqualTo(3);
        assertThat(createdDelivery.getInteger("responseStatus")).isEqualTo(204);
    }

    @Test
    void aHungReceiverDoesNotHoldUpTransitions() {
        receiver.answer = r -> null; // takes the request and never answers
        webhook(receiver.url(), "k", ALL);
        String id = create();
        await().atMost(Duration.ofSeconds(10)).until(() -> receiver.held.size() == 1);
        // while the receiver sits on the first delivery, the sandbox is paused, resumed and killed
        ok(s.post("/sandboxes/" + id + "/pause", "{}"), 204);
        ok(s.post("/sandboxes/" + id + "/connect", "{\"timeout\":300}"), 201);
        ok(s.delete("/sandboxes/" + id), 204);
        assertThat(receiver.requests).hasSize(1);
        assertThat(receiver.held).hasSize(1);
        assertThat(types(events("/" + id))).hasSize(4);
    }

    @Test
    void pendingDeliveriesSurviveARestartAndKeepTheirIds() throws Exception {
        receiver.answer = r -> 500;
        String hook = webhook(receiver.url(), "k", ALL);
        String id = create();
        ok(s.delete("/sandboxes/" + id), 204);
        await().atMost(Duration.ofSeconds(10)).until(() -> receiver.requests.size() >= 1);
        String firstId = receiver.requests.getFirst().header("e2b-delivery-id");
        s.close();
        s = null;
        receiver.answer = r -> 200;
        int before = receiver.requests.size();
        s = new TestServer(tmp.resolve("data"), envd.runtime);
        await().atMost(Duration.ofSeconds(30)).until(() -> receiver.requests.stream().skip(before)
                .map(r -> new JsonObject(r.body()).getString("type")).toList().contains("sandbox.lifecycle.killed"));
        var after = receiver.requests.subList(before, receiver.requests.size());
        assertThat(after.getFirst().header("e2b-delivery-id")).isEqualTo(firstId);
        assertThat(after.stream().map(r -> new JsonObject(r.body()).getString("type")))
                .containsExactly("sandbox.lifecycle.created", "sandbox.lifecycle.killed");
        JsonArray log = new JsonArray(s.get("/events/webhooks/" + hook + "/deliveries").body());
        assertThat(log.stream().map(d -> ((JsonObject) d).getString("status"))).containsOnly("delivered");
    }

    @Test
    void disabledWebhooksGetNothingAndUnsubscribedTypesAreNotSent() {
        String off = webhook(receiver.url(), "k", ALL);
        ok(patch("/events/webhooks/" + off, "{\"enabled\":false}"), 200);
        webhook(receiver.url(), "k", "[\"sandbox.lifecycle.killed\"]");
        String id = create();
        ok(s.delete("/sandboxes/" + id), 204);
        await().atMost(Duration.ofSeconds(10)).until(() -> receiver.requests.size() >= 1);
        assertThat(receiver.requests).singleElement()
                .satisfies(r -> assertThat(new JsonObject(r.body()).getString("type")).isEqualTo("sandbox.lifecycle.killed"));
        assertThat(new JsonArray(s.get("/events/webhooks/" + off + "/deliveries").body())).isEmpty();
    }
}
