package dev.capsule.envd.filesystem;

import dev.capsule.envd.rpc.filesystem.EntryInfo;
import dev.capsule.envd.rpc.filesystem.FileType;
import dev.capsule.envd.users.Users;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

import java.net.UnixDomainSocketAddress;
import java.nio.channels.ServerSocketChannel;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.Map;

import static java.net.StandardProtocolFamily.UNIX;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

/** Entries: Go's FileMode strings and the EntryInfo of special files. */
class EntriesTest {
    private final Path tmp;
    private final Users users = new Users();

    EntriesTest() throws Exception {
        tmp = Files.createTempDirectory("capsule-entries").toRealPath();
    }

    @AfterEach
    void cleanUp() throws Exception {
        FsHarness.deleteTree(tmp);
    }

    @Test
    void permissionsMatchGoFileModeString() {
        Map<Integer, String> expected = Map.of(
                0100644, "-rw-r--r--",
                0040755, "drwxr-xr-x",
                0120777, "Lrwxrwxrwx",
                0041777, "dtrwxrwxrwx",
                0020666, "Dcrw-rw-rw-",
                0060660, "Drw-rw----",
                0010600, "prw-------",
                0140755, "Srwxr-xr-x",
                0104755, "urwxr-xr-x",
                0102755, "grwxr-xr-x");
        expected.forEach((mode, string) ->
                assertThat(Entries.permissions(mode)).as(Integer.toOctalString(mode)).isEqualTo(string));
        assertThat(Entries.permissions(0106000)).isEqualTo("ug---------");
        assertThat(Entries.permissions(0100000)).isEqualTo("----------");
    }

    @Test
    void specialFilesOfTheRealSystem() throws Exception {
        EntryInfo devNull = Entries.of(Path.of("/dev/null"), users);
        assertThat(devNull.getPermissions()).isEqualTo("Dcrw-rw-rw-");
        assertThat(devNull.getType()).isEqualTo(FileType.FILE_TYPE_UNSPECIFIED);
        assertThat(devNull.getOwner()).isEqualTo("root");

        EntryInfo root = Entries.of(Path.of("/"), users);
        assertThat(root.getName()).isEqualTo("/");
        assertThat(root.getType()).isEqualTo(FileType.FILE_TYPE_DIRECTORY);

        Path sticky = Files.createDirectory(tmp.resolve("sticky"));
        Files.setAttribute(sticky, "unix:mode", 01777);
        assertThat(Entries.of(sticky, users).getPermissions()).isEqualTo("dtrwxrwxrwx");
        assertThat(Entries.of(sticky, users).getMode()).isEqualTo(0777);

        Path socket = tmp.resolve("sock");
        try (ServerSocketChannel server = ServerSocketChannel.open(UNIX)) {
            server.bind(UnixDomainSocketAddress.of(socket));
            assertThat(Entries.of(socket, users).getPermissions()).startsWith("S");
        }

        Path setuid = Files.writeString(tmp.resolve("setuid"), "#!/bin/sh\n");
        Files.setPosixFilePermissions(setuid, PosixFilePermissions.fromString("rwxr-xr-x"));
        Files.setAttribute(setuid, "unix:mode", 04755);
        EntryInfo suid = Entries.of(setuid, users);
        assertThat(suid.getPermissions()).isEqualTo("urwxr-xr-x");
        assertThat(suid.getMode()).as("only the permission bits, like Go's FileMode.Perm()").isEqualTo(0755);
        assertThat(suid.getModifiedTime().getSeconds()).isPositive();
    }

    @Test
    void missingPathsThrowNoSuchFile() {
        assertThatThrownBy(() -> Entries.of(tmp.resolve("missing"), users)).isInstanceOf(NoSuchFileException.class);
    }
}
