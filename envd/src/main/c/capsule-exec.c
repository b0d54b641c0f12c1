/*
 * capsule-exec: how envd starts a user's command. Java cannot change a child's credentials or session, so envd runs
 *
 *     capsule-exec <uid> <gid> <groups> <cwd> -- <cmd> [args...]
 *
 * (groups: comma-separated gids, may be empty) and this program, in the child, starts a new session (so the command
 * leads its own process group and a signal to the group reaches all its children), drops to the user, changes to the
 * working directory and execs the command. The environment comes from the caller unchanged; the command is looked up
 * on its PATH. It is linked statically so it runs on any sandbox rootfs, whatever its C library.
 *
 * Exit codes when the command never runs (as env(1) and shells do): 125 setup failed, 126 found but not runnable,
 * 127 not found. The reason goes to stderr, which envd streams to the client.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <grp.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <dirent.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

#define MAX_GROUPS 1024

static void fail(int code, const char *what, const char *arg) {
    int err = errno;
    fprintf(stderr, "capsule-exec: %s%s%s: %s\n", what, arg ? " " : "", arg ? arg : "", strerror(err));
    _exit(code);
}

static void usage(const char *why) {
    fprintf(stderr, "capsule-exec: %s\nusage: capsule-exec <uid> <gid> <groups,...> <cwd> -- <cmd> [args...]\n", why);
    _exit(125);
}

static unsigned long number(const char *s, const char *name) {
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v > UINT_MAX - 1) {
        fprintf(stderr, "capsule-exec: invalid %s '%s'\n", name, s);
        _exit(125);
    }
    return v;
}

/*
 * envd starts this program with posix_spawn, so it inherits every descriptor of the JVM that is not close-on-exec
 * (sockets, files, other commands' pipes). The command must get only 0, 1 and 2: a stray copy of another command's
 * stdin pipe would keep that command from ever seeing end of input.
 */
static void close_inherited(void) {
#ifdef SYS_close_range
    if (syscall(SYS_close_range, 3U, ~0U, 0U) == 0) {
        return;
    }
#endif
    DIR *dir = opendir("/proc/self/fd");
    if (dir == NULL) {
        for (long fd = 3, max = sysconf(_SC_OPEN_MAX); fd < (max > 0 && max < 65536 ? max : 65536); fd++) {
            close((int) fd);
        }
        return;
    }
    int keep = dirfd(dir);
    struct dirent *entry;
    while ((entry = readdir(dir)) != NULL) {
        char *end;
        long fd = strtol(entry->d_name, &end, 10);
        if (*end == '\0' && end != entry->d_name && fd > 2 && fd != keep) {
            close((int) fd);
        }
    }
    closedir(dir);
}

int main(int argc, char **argv) {
    if (argc < 7 || strcmp(argv[5], "--") != 0) {
        usage("wrong arguments");
    }
    uid_t uid = (uid_t) number(argv[1], "uid");
    gid_t gid = (gid_t) number(argv[2], "gid");
    gid_t groups[MAX_GROUPS];
    size_t ngroups = 0;
    char *list = argv[3];
    for (char *tok = strtok(list, ","); tok != NULL; tok = strtok(NULL, ",")) {
        if (ngroups == MAX_GROUPS) {
            usage("too many groups");
        }
        groups[ngroups++] = (gid_t) number(tok, "group id");
    }
    const char *cwd = argv[4];

    close_inherited();

    /* The JVM may have left signals blocked or ignored; both survive exec, so give the command a clean slate. */
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    for (int sig = 1; sig < NSIG; sig++) {
        if (sig != SIGKILL && sig != SIGSTOP) {
            signal(sig, SIG_DFL);
        }
    }

    /* Under a PTY the launcher already made us a session leader (EPERM): that session is the one we want. */
    if (setsid() < 0 && errno != EPERM) {
        fail(125, "cannot start a new session", NULL);
    }

    /* envd running unprivileged can still start commands as itself. */
    if (!(geteuid() != 0 && uid == geteuid())) {
        if (setgroups(ngroups, groups) < 0) {
            fail(125, "cannot set supplementary groups", NULL);
        }
        if (setgid(gid) < 0) {
            fail(125, "cannot set group id", argv[2]);
        }
        if (setuid(uid) < 0) {
            fail(125, "cannot set user id", argv[1]);
        }
    }

    if (chdir(cwd) < 0) {
        fail(125, "cannot change to working directory", cwd);
    }

    execvp(argv[6], &argv[6]);
    fail(errno == ENOENT || errno == ENOTDIR ? 127 : 126, "cannot run", argv[6]);
    return 127;
}
