package dev.capsule.envd.users;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.FileTime;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * The machine's users and groups, read from /etc/passwd and /etc/group (what every template has; envd does not go
 * through NSS). The files are read again when they change, so users added inside a running sandbox are seen.
 */
public final class Users {
    private final Path passwdFile;
    private final Path groupFile;
    private Snapshot snapshot = new Snapshot(null, null, Map.of(), Map.of(), Map.of());

    public Users() {
        this(Path.of("/etc/passwd"), Path.of("/etc/group"));
    }

    public Users(Path passwdFile, Path groupFile) {
        this.passwdFile = passwdFile;
        this.groupFile = groupFile;
    }

    /** The user with this name, if the machine has one. */
    public Optional<User> find(String name) {
        return Optional.ofNullable(current().users.get(name));
    }

    /** The name of the user with this uid, or the uid as a string if none has it. */
    public String userName(int uid) {
        String name = current().userNames.get(uid);
        return name != null ? name : Integer.toString(uid);
    }

    /** The name of the group with this gid, or the gid as a string if none has it. */
    public String groupName(int gid) {
        String name = current().groupNames.get(gid);
        return name != null ? name : Integer.toString(gid);
    }

    private synchronized Snapshot current() {
        FileTime passwdTime = modified(passwdFile);
        FileTime groupTime = modified(groupFile);
        if (passwdTime != null && passwdTime.equals(snapshot.passwdTime)
                && groupTime != null && groupTime.equals(snapshot.groupTime)) {
            return snapshot;
        }
        snapshot = read(passwdTime, groupTime);
        return snapshot;
    }

    private Snapshot read(FileTime passwdTime, FileTime groupTime) {
        Map<Integer, String> groupNames = new HashMap<>();
        Map<String, List<Integer>> membership = new HashMap<>();
        for (String line : lines(groupFile)) {
            String[] f = line.split(":", -1);
            if (f.length < 3 || !isNumber(f[2])) {
                continue;
            }
            int gid = Integer.parseInt(f[2]);
            groupNames.putIfAbsent(gid, f[0]);
            if (f.length >= 4 && !f[3].isBlank()) {
                for (String member : f[3].split(",")) {
                    membership.computeIfAbsent(member.trim(), k -> new ArrayList<>()).add(gid);
                }
            }
        }
        Map<String, User> users = new HashMap<>();
        Map<Integer, String> userNames = new HashMap<>();
        for (String line : lines(passwdFile)) {
            String[] f = line.split(":", -1);
            if (f.length < 7 || !isNumber(f[2]) || !isNumber(f[3])) {
                continue;
            }
            int uid = Integer.parseInt(f[2]);
            int gid = Integer.parseInt(f[3]);
            List<Integer> groups = new ArrayList<>();
            groups.add(gid);
            for (int g : membership.getOrDefault(f[0], List.of())) {
                if (!groups.contains(g)) {
                    groups.add(g);
                }
            }
            String home = f[5].isEmpty() ? "/" : f[5];
            String shell = f[6].isEmpty() ? "/bin/sh" : f[6];
            users.putIfAbsent(f[0], new User(f[0], uid, gid, Path.of(home), shell, groups));
            userNames.putIfAbsent(uid, f[0]);
        }
        return new Snapshot(passwdTime, groupTime, users, userNames, groupNames);
    }

    private static List<String> lines(Path file) {
        try {
            return Files.exists(file) ? Files.readAllLines(file) : List.of();
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read " + file, e);
        }
    }

    private static FileTime modified(Path file) {
        try {
            return Files.getLastModifiedTime(file);
        } catch (IOException e) {
            return null;
        }
    }

    private static boolean isNumber(String s) {
        return !s.isEmpty() && s.chars().allMatch(Character::isDigit) && s.length() < 10;
    }

    private record Snapshot(FileTime passwdTime, FileTime groupTime, Map<String, User> users,
                            Map<Integer, String> userNames, Map<Integer, String> groupNames) {}
}
