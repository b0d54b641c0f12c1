package dev.capsule.runtime.oci;

/** What runc reports about a container: its status and the host pid of its init (0 once stopped). */
public record ContainerState(String id, Status status, int pid) {

    public enum Status { CREATING, CREATED, RUNNING, PAUSED, STOPPED }
}
