package dev.capsule.runtime.oci;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * The seccomp filter of every sandbox, in OCI {@code linux.seccomp} form. The policy is Docker's default profile
 * resolved for x86_64 and Docker's default capability set: unknown system calls fail with EPERM; the allow list
 * ({@code seccomp-allowed.txt}) plus the argument-checked rules below. Namespace creation (unshare, setns, clone
 * with namespace flags) stays forbidden; clone3 reports ENOSYS so libc falls back to clone, whose flags are checked.
 */
public final class SeccompProfile {

    private static final int EPERM = 1;
    private static final int ENOSYS = 38;
    private static final long AF_VSOCK = 40;
    /** CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET. */
    private static final long CLONE_NAMESPACE_FLAGS = 0x7E020000L;
    /** Execution domains a program may select: PER_LINUX, PER_LINUX32, UNAME26 variants, and the query 0xffffffff. */
    private static final long[] PERSONALITIES = {0x0, 0x8, 0x20000, 0x20008, 0xffffffffL};

    private static final ObjectMapper JSON = new ObjectMapper();

    private SeccompProfile() {
    }

    public static List<String> allowedSyscalls() {
        try (InputStream in = SeccompProfile.class.getResourceAsStream("seccomp-allowed.txt")) {
            if (in == null) {
                throw new IllegalStateException("seccomp-allowed.txt is missing from the runtime jar");
            }
            List<String> names = new ArrayList<>();
            for (String line : new String(in.readAllBytes(), StandardCharsets.UTF_8).split("\n")) {
                if (!line.isBlank() && !line.startsWith("#")) {
                    names.addAll(Arrays.asList(line.strip().split("\\s+")));
                }
            }
            return List.copyOf(names);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** The profile as the value of {@code linux.seccomp} in config.json. */
    public static ObjectNode dockerDefault() {
        ObjectNode seccomp = JSON.createObjectNode();
        seccomp.put("defaultAction", "SCMP_ACT_ERRNO");
        seccomp.put("defaultErrnoRet", EPERM);
        seccomp.putArray("architectures").add("SCMP_ARCH_X86_64").add("SCMP_ARCH_X86").add("SCMP_ARCH_X32");
        ArrayNode syscalls = seccomp.putArray("syscalls");

        ObjectNode allowed = syscalls.addObject();
        ArrayNode names = allowed.putArray("names");
        allowedSyscalls().forEach(names::add);
        allowed.put("action", "SCMP_ACT_ALLOW");

        // every socket family but vsock, which reaches the hypervisor
        rule(syscalls, "socket", "SCMP_ACT_ALLOW").set("args", arg(0, AF_VSOCK, 0, "SCMP_CMP_NE"));
        for (long personality : PERSONALITIES) {
            rule(syscalls, "personality", "SCMP_ACT_ALLOW").set("args", arg(0, personality, 0, "SCMP_CMP_EQ"));
        }
        // threads and processes, but no new namespaces: (flags & CLONE_NAMESPACE_FLAGS) == 0
        rule(syscalls, "clone", "SCMP_ACT_ALLOW").set("args", arg(0, CLONE_NAMESPACE_FLAGS, 0, "SCMP_CMP_MASKED_EQ"));
        // clone3 passes flags in memory seccomp cannot inspect; ENOSYS makes glibc fall back to clone
        rule(syscalls, "clone3", "SCMP_ACT_ERRNO").put("errnoRet", ENOSYS);
        return seccomp;
    }

    private static ObjectNode rule(ArrayNode syscalls, String name, String action) {
        ObjectNode rule = syscalls.addObject();
        rule.putArray("names").add(name);
        rule.put("action", action);
        return rule;
    }

    private static JsonNode arg(int index, long value, long valueTwo, String op) {
        ArrayNode args = JSON.createArrayNode();
        ObjectNode arg = args.addObject();
        arg.put("index", index);
        arg.put("value", value);
        if (op.equals("SCMP_CMP_MASKED_EQ")) {
            // runc/libseccomp: value is the mask, valueTwo the expected result of (arg & mask)
            arg.put("valueTwo", valueTwo);
        }
        arg.put("op", op);
        return args;
    }
}
