package dev.capsule.envd.process;

import dev.capsule.envd.rpc.process.ProcessEvent;

import java.util.Set;

/** Turns a Java exit value into E2B's end event, whose status strings are Go's {@code os.ProcessState} strings. */
final class ExitStatus {
    private ExitStatus() {}

    /**
     * Java reports a death by signal N as exit value 128+N, exactly what a command that calls {@code exit(128+N)}
     * reports (the shell convention). The two cannot be told apart after the fact, so a 128+N exit counts as death by
     * signal N only when envd sent N to the process (SendSignal or the Start deadline): that is when clients expect
     * Go's {@code signal: killed} with exit code -1. Any other 128+N is reported as {@code exit status 128+N}.
     */
    static ProcessEvent.EndEvent endEvent(int exitValue, Set<Integer> signalsSent) {
        ProcessEvent.EndEvent.Builder end = ProcessEvent.EndEvent.newBuilder();
        int signal = exitValue - 128;
        if (signal > 0 && signalsSent.contains(signal)) {
            String status = "signal: " + signalName(signal);
            return end.setExitCode(-1).setExited(false).setStatus(status).setError(status).build();
        }
        String status = "exit status " + exitValue;
        end.setExitCode(exitValue).setExited(true).setStatus(status);
        if (exitValue != 0) {
            // Go's cmd.Wait() fails with the status as its error for any unsuccessful exit; E2B sends that error.
            end.setError(status);
        }
        return end.build();
    }

    /** Go's names for the signals envd sends. */
    static String signalName(int signal) {
        return switch (signal) {
            case Libc.SIGKILL -> "killed";
            case Libc.SIGTERM -> "terminated";
            default -> "signal " + signal;
        };
    }
}
