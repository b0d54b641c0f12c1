package dev.capsule.server.testing;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.net.ServerSocket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.attribute.PosixFilePermissions;
import java.sql.DriverManager;
import java.sql.SQLException;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * A real PostgreSQL server for the store tests, from the binaries zonky publishes on Maven Central (a test
 * dependency), started once per test JVM and stopped at its exit. PostgreSQL refuses to run as root, and these
 * tests run as root, so initdb and the server run as {@code nobody} via setpriv when we are root.
 */
public final class PostgresFixture {

    private static PostgresFixture instance;
    private static final AtomicInteger DATABASES = new AtomicInteger();

    private final Path base;
    private final Path bin;
    private final Path data;
    private final int port;

    private PostgresFixture() throws IOException, InterruptedException {
        base = Files.createTempDirectory("capsule-pg-");
        Files.setPosixFilePermissions(base, PosixFilePermissions.fromString("rwxr-xr-x"));
        Path archive = base.resolve("postgres.txz");
        try (InputStream in = PostgresFixture.class.getResourceAsStream("/postgres-linux-x86_64.txz")) {
            if (in == null) throw new IllegalStateException("postgres binaries missing from the test classpath");
            Files.copy(in, archive, StandardCopyOption.REPLACE_EXISTING);
        }
        Path dist = Files.createDirectory(base.resolve("dist"));
        run(List.of("tar", "-xJf", archive.toString(), "-C", dist.toString()), false);
        bin = dist.resolve("bin");
        data = base.resolve("data");
        Files.createDirectory(data);
        Path socketDir = Files.createDirectory(base.resolve("sock"));
        if (isRoot()) {
            run(List.of("chown", "65534:65534", data.toString(), socketDir.toString(), base.toString()), false);
        }
        run(List.of(bin.resolve("initdb").toString(), "-D", data.toString(), "-U", "postgres", "-A", "trust",
                "-E", "UTF8", "--no-locale"), true);
        try (ServerSocket s = new ServerSocket(0)) {
            port = s.getLocalPort();
        }
        run(List.of(bin.resolve("pg_ctl").toString(), "-D", data.toString(), "-l", base.resolve("server.log").toString(),
                "-w", "-t", "60", "-o", "-p " + port + " -k " + socketDir + " -c listen_addresses=127.0.0.1 -c fsync=off",
                "start"), true);
    }

    /** The shared server, started on first use. */
    public static synchronized PostgresFixture get() {
        if (instance == null) {
            try {
                instance = new PostgresFixture();
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new IllegalStateException(e);
            }
            Runtime.getRuntime().addShutdownHook(new Thread(instance::stop));
        }
        return instance;
    }

    /** A JDBC URL to a new empty database (user {@code postgres}, no password). */
    public String newDatabase() {
        String name = "capsule_test_" + DATABASES.incrementAndGet();
        try (var c = DriverManager.getConnection(url("postgres"), "postgres", "");
             var st = c.createStatement()) {
            st.execute("CREATE DATABASE " + name);
        } catch (SQLException e) {
            throw new IllegalStateException(e);
        }
        return url(name);
    }

    private String url(String db) {
        return "jdbc:postgresql://127.0.0.1:" + port + "/" + db;
    }

    private void stop() {
        try {
            run(List.of(bin.resolve("pg_ctl").toString(), "-D", data.toString(), "-m", "immediate", "-w", "stop"), true);
        } catch (Exception e) {
            System.err.println("stopping the test PostgreSQL failed: " + e);
        }
        try (var paths = Files.walk(base)) {
            paths.sorted(Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
        } catch (IOException ignored) {
            // best effort at JVM exit
        }
    }

    private static boolean isRoot() {
        return "root".equals(System.getProperty("user.name"));
    }

    private void run(List<String> command, boolean unprivileged) throws IOException, InterruptedException {
        var cmd = new ArrayList<String>();
        if (unprivileged && isRoot()) {
            cmd.addAll(List.of("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"));
        }
        cmd.addAll(command);
        Process p = new ProcessBuilder(cmd).directory(base.toFile()).redirectErrorStream(true).start();
        byte[] out = p.getInputStream().readAllBytes();
        if (!p.waitFor(120, TimeUnit.SECONDS) || p.exitValue() != 0) {
            p.destroyForcibly();
            throw new IllegalStateException(String.join(" ", cmd) + " failed:\n" + new String(out));
        }
    }
}
