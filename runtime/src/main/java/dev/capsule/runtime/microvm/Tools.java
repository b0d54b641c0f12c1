package dev.capsule.runtime.microvm;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

/** Host programs by absolute path: a server's PATH may lack /usr/sbin, where Debian puts ip and mkfs.ext4. */
final class Tools {

    private Tools() {
    }

    static String path(String name) {
        for (String dir : List.of("/usr/sbin", "/usr/bin", "/sbin", "/bin")) {
            Path candidate = Path.of(dir, name);
            if (Files.isExecutable(candidate)) {
                return candidate.toString();
            }
        }
        return name;
    }
}
