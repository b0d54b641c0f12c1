package dev.capsule.runtime.oci;

/** A started sandbox container: its id, files on the host, cgroup and the host pid of its init (PID 1 inside). */
public record Sandbox(String id, SandboxDirectory directory, String cgroupsPath, int pid) {
}
