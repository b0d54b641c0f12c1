package dev.capsule.runtime.bundle;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * A built runtime bundle: the directory bind-mounted read-only at {@value #MOUNT_POINT} in every sandbox. Layout
 * (paths inside the sandbox): {@code jre/} jlink'ed Java runtime, {@code lib/} the bundle's own dynamic loader and
 * C library, {@code bin/init} static init for PID 1, {@code bin/capsule-exec} static exec helper,
 * {@code envd.jar} and its AOT cache {@code envd.aot}.
 */
public record RuntimeBundle(Path root, String hash) {

    public static final String MOUNT_POINT = "/opt/capsule";
    public static final String LOADER = MOUNT_POINT + "/lib/ld-linux-x86-64.so.2";
    public static final String LIBRARY_PATH = MOUNT_POINT + "/lib";
    public static final String JAVA = MOUNT_POINT + "/jre/bin/java";
    public static final String INIT = MOUNT_POINT + "/bin/init";
    public static final String EXEC_HELPER = MOUNT_POINT + "/bin/capsule-exec";
    public static final String ENVD_JAR = MOUNT_POINT + "/envd.jar";
    /** envd's Java AOT cache, recorded when the bundle is built (see {@link EnvdAotTraining}); may be absent. */
    public static final String ENVD_AOT_CACHE = MOUNT_POINT + "/envd.aot";
    /**
     * envd's JVM flags: the fastest start and smallest footprint measured for envd. The AOT cache is recorded with
     * these, and the JVM only uses a cache recorded with compatible flags.
     */
    public static final List<String> ENVD_JVM_OPTIONS = List.of("-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
            "-Xms8m", "--enable-native-access=ALL-UNNAMED", "--sun-misc-unsafe-memory-access=allow",
            // the helper is not beside envd.jar in the bundle, where envd would look by default
            "-Dcapsule.envd.execHelper=" + EXEC_HELPER);

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

    /**
     * The command that runs envd from the bundle with {@link #ENVD_JVM_OPTIONS} and {@code envdArgs}, using the
     * bundle's AOT cache. A bundle without one (its training failed) still starts: the JVM then runs without a
     * cache, silently (the logs are switched off so envd's output stays clean).
     */
    public static List<String> envdCommand(List<String> envdArgs) {
        List<String> options = new ArrayList<>(ENVD_JVM_OPTIONS);
        options.addAll(List.of("-XX:AOTCache=" + ENVD_AOT_CACHE, "-Xlog:aot=off", "-Xlog:cds=off"));
        return envdCommandWithOptions(options, envdArgs);
    }

    /**
     * The command that runs envd from the bundle with exactly {@code jvmOptions} and {@code envdArgs}. The microvm
     * driver passes {@link #ENVD_JVM_OPTIONS} alone: the AOT cache holds code generated for the host's CPU, and the
     * guest's CPU model lacks some of its instructions (envd died of SIGILL in an AOT adapter).
     */
    public static List<String> envdCommandWithOptions(List<String> jvmOptions, List<String> envdArgs) {
        List<String> args = new ArrayList<>(jvmOptions);
        args.add("-jar");
        args.add(ENVD_JAR);
        args.addAll(envdArgs);
        return javaCommand(args);
    }
}
