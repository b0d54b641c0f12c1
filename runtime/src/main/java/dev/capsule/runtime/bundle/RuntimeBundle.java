package dev.capsule.runtime.bundle;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * A built runtime bundle: the directory bind-mounted read-only at {@value #MOUNT_POINT} in every sandbox. Layout
 * (paths inside the sandbox): {@code jre/} jlink'ed Java runtime, {@code lib/} the bundle's own dynamic loader and
 * C library, {@code bin/init} static init for PID 1, {@code bin/capsule-exec} static exec helper,
 * {@code envd.jar}.
 */
public record RuntimeBundle(Path root, String hash) {

    public static final String MOUNT_POINT = "/opt/capsule";
    public static final String LOADER = MOUNT_POINT + "/lib/ld-linux-x86-64.so.2";
    public static final String LIBRARY_PATH = MOUNT_POINT + "/lib";
    public static final String JAVA = MOUNT_POINT + "/jre/bin/java";
    public static final String INIT = MOUNT_POINT + "/bin/init";
    public static final String EXEC_HELPER = MOUNT_POINT + "/bin/capsule-exec";
    public static final String ENVD_JAR = MOUNT_POINT + "/envd.jar";

    /**
     * The command line that starts the bundle's JVM inside a sandbox, followed by {@code javaArgs}. The loader
     * is invoked explicitly with the bundle's library path, so the JVM runs on the bundle's libc whatever the
     * template's is, and no environment variable leaks the bundle into the JVM's children. Java's default
     * process launcher (posix_spawn through jspawnhelper) does not survive that; FORK does.
     */
    public static List<String> javaCommand(List<String> javaArgs) {
        List<String> command = new ArrayList<>(List.of(LOADER, "--library-path", LIBRARY_PATH, JAVA,
                "-Djdk.lang.Process.launchMechanism=FORK"));
        command.addAll(javaArgs);
        return command;
    }

    /** The command that runs envd from the bundle with {@code envdArgs}. */
    public static List<String> envdCommand(List<String> jvmOptions, List<String> envdArgs) {
        List<String> args = new ArrayList<>(jvmOptions);
        args.add("-jar");
        args.add(ENVD_JAR);
        args.addAll(envdArgs);
        return javaCommand(args);
    }
}
