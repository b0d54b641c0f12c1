package dev.capsule.cli;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;

import static org.assertj.core.api.Assertions.assertThat;

class KeysCommandTest {

    @Test
    void aKeyIsCreatedListedAndRevoked(@TempDir Path data) {
        String dataDir = "--data-dir=" + data;
        CapsuleTest.Run created = CapsuleTest.run("keys", "create", "--name", "ci", dataDir);
        assertThat(created.exit()).as(created.err()).isZero();
        String key = created.out().strip();
        assertThat(key).matches("e2b_[0-9a-f]{40}");

        CapsuleTest.Run listed = CapsuleTest.run("keys", "list", dataDir);
        assertThat(listed.exit()).isZero();
        assertThat(listed.out()).contains("\tci\t").doesNotContain(key).doesNotContain("revoked");

        CapsuleTest.Run revoked = CapsuleTest.run("keys", "revoke", key, dataDir);
        assertThat(revoked.exit()).as(revoked.err()).isZero();
        assertThat(CapsuleTest.run("keys", "list", dataDir).out()).contains("revoked");
    }

    @Test
    void aKeyGetsItsOwnLimitsAndBackTheServersSettings(@TempDir Path data) {
        String dataDir = "--data-dir=" + data;
        String key = CapsuleTest.run("keys", "create", "--name", "ci", dataDir).out().strip();
        String id = key.substring(4, 12);

        CapsuleTest.Run set = CapsuleTest.run("keys", "limits", key, "--creates-per-second", "1", "--sandboxes", "0", dataDir);
        assertThat(set.exit()).as(set.err()).isZero();
        assertThat(set.out().strip()).isEqualTo(id + "\trequests=server creates-per-second=1 sandboxes=unlimited");
        // options not given stay as they were
        assertThat(CapsuleTest.run("keys", "limits", id, "--requests", "500", dataDir).out().strip())
                .isEqualTo(id + "\trequests=500 creates-per-second=1 sandboxes=unlimited");
        assertThat(CapsuleTest.run("keys", "list", dataDir).out()).contains("\tci\t").contains("requests=500");

        assertThat(CapsuleTest.run("keys", "limits", id, "--server-settings", dataDir).out().strip())
                .isEqualTo(id + "\trequests=server creates-per-second=server sandboxes=server");
        assertThat(CapsuleTest.run("keys", "list", dataDir).out()).doesNotContain("requests=");

        CapsuleTest.Run negative = CapsuleTest.run("keys", "limits", id, "--requests", "-1", dataDir);
        assertThat(negative.exit()).isEqualTo(2);
        assertThat(negative.err()).contains("cannot be negative");
        CapsuleTest.Run unknown = CapsuleTest.run("keys", "limits", "nosuchkey", "--requests", "1", dataDir);
        assertThat(unknown.exit()).isEqualTo(1);
        assertThat(unknown.err()).contains("no key 'nosuchkey'");
    }

    @Test
    void revokingAnUnknownKeyOrAMistypedSettingFailsWithAReason(@TempDir Path data) {
        CapsuleTest.Run unknown = CapsuleTest.run("keys", "revoke", "nosuchkey", "--data-dir=" + data);
        assertThat(unknown.exit()).isEqualTo(1);
        assertThat(unknown.err()).contains("no key 'nosuchkey'");

        CapsuleTest.Run typo = CapsuleTest.run("keys", "list", "--data-dri=" + data);
        assertThat(typo.exit()).isEqualTo(2);
        assertThat(typo.err()).contains("capsule keys:");
    }
}
