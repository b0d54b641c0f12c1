package dev.capsule.envd.process;

import com.google.protobuf.ByteString;
import dev.capsule.connect.Code;
import dev.capsule.connect.ConnectException;
import dev.capsule.envd.rpc.process.ProcessEvent;
import org.junit.jupiter.api.Test;

import java.time.Duration;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

/** The fan-out's promises: every subscriber gets everything from when it joined; a stuck one cannot stall the rest. */
class OutputHubTest {
    private static final Duration POLL = Duration.ofSeconds(5);

    private static ProcessEvent data(int i) {
        return ProcessEvent.newBuilder().setData(ProcessEvent.DataEvent.newBuilder()
                .setStdout(ByteString.copyFromUtf8("chunk " + i))).build();
    }

    private static ProcessEvent end() {
        return ProcessEvent.newBuilder().setEnd(ProcessEvent.EndEvent.newBuilder().setExited(true)
                .setStatus("exit status 0")).build();
    }

    @Test
    void aStuckSubscriberIsDroppedAndTheOthersGetEverything() throws Exception {
        OutputHub hub = new OutputHub(Duration.ofMillis(50));
        OutputHub.Subscription stuck = hub.subscribe();
        OutputHub.Subscription reader = hub.subscribe();
        int events = OutputHub.QUEUE_EVENTS * 3;
        Thread producer = Thread.ofVirtual().start(() -> {
            for (int i = 0; i < events; i++) {
                hub.publish(data(i));
            }
            hub.finish(end());
        });
        for (int i = 0; i < events; i++) {
            assertThat(reader.next(POLL)).isEqualTo(data(i));
        }
        assertThat(reader.next(POLL).hasEnd()).isTrue();
        producer.join();
        assertThatThrownBy(() -> stuck.next(POLL)).isInstanceOfSatisfying(ConnectException.class,
                e -> assertThat(e.code()).isEqualTo(Code.RESOURCE_EXHAUSTED));
    }

    @Test
    void aClosedSubscriberNeverHoldsThePublisherAndWakesItsReader() throws Exception {
        OutputHub hub = new OutputHub(Duration.ofDays(1));
        OutputHub.Subscription gone = hub.subscribe();
        gone.close(new ConnectException(Code.CANCELED, "client left"));
        for (int i = 0; i < OutputHub.QUEUE_EVENTS * 2; i++) {
            hub.publish(data(i));
        }
        assertThatThrownBy(() -> gone.next(POLL)).isInstanceOfSatisfying(ConnectException.class,
                e -> assertThat(e.code()).isEqualTo(Code.CANCELED));
    }

    @Test
    void aLateSubscriberGetsOnlyTheEnd() {
        OutputHub hub = new OutputHub(Duration.ofSeconds(1));
        hub.publish(data(1));
        hub.finish(end());
        OutputHub.Subscription late = hub.subscribe();
        assertThat(late.next(POLL)).isEqualTo(end());
    }
}
