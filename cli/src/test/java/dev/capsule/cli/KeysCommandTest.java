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
    void revokingAnUnknownKeyOrAMistypedSettingFailsWithAReason(@TempDir Path data) {
        CapsuleTest.Run unknown = CapsuleTest.run("keys", "revoke", "nosuchkey", "--data-dir=" + data);
        assertThat(unknown.exit()).isEqualTo(1);
        assertThat(unknown.err()).contains("no key 'nosuchkey'");

        CapsuleTest.Run typo = CapsuleTest.run("keys", "list", "--data-dri=" + data);
        assertThat(typo.exit()).isEqualTo(2);
        assertThat(typo.err()).contains("capsule keys:");
    }
}
