/*
 * capsule-guest: what the microVM guest agent (agent.sh) needs that busybox cannot do, after a memory snapshot is
 * restored:
 *
 *     capsule-guest clock <seconds> <nanoseconds>   set the wall clock (it stood still while the VM was saved)
 *     capsule-guest seed <hex bytes>                mix the host's entropy into the kernel's pool and reseed its
 *                                                   generator at once
 *
 * Every clone of one snapshot starts with the same random pool; writing to /dev/urandom alone would only mix the
 * bytes in, and the generator would keep its old key until its next scheduled reseed (up to a minute). Credited
 * entropy (RNDADDENTROPY) followed by RNDRESEEDCRNG gives each clone its own key before anything reads it. Linked
 * statically, so it runs on any template whatever its C library. Exit code 1 and a message on stderr on failure.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/random.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#define MAX_SEED 512

static int fail(const char *what) {
    fprintf(stderr, "capsule-guest: %s: %s\n", what, strerror(errno));
    return 1;
}

static int usage(void) {
    fprintf(stderr, "usage: capsule-guest clock <seconds> <nanoseconds> | seed <hex bytes>\n");
    return 2;
}

static int hex(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static int set_clock(const char *seconds, const char *nanos) {
    char *end;
    errno = 0;
    struct timespec now = {.tv_sec = strtoll(seconds, &end, 10)};
    if (errno != 0 || *end != '\0') return usage();
    now.tv_nsec = strtol(nanos, &end, 10);
    if (errno != 0 || *end != '\0' || now.tv_nsec < 0 || now.tv_nsec >= 1000000000L) return usage();
    if (clock_settime(CLOCK_REALTIME, &now) != 0) return fail("clock_settime");
    return 0;
}

static int reseed(const char *text) {
    size_t length = strlen(text);
    if (length == 0 || length % 2 != 0 || length / 2 > MAX_SEED) return usage();
    struct {
        struct rand_pool_info info;
        unsigned char bytes[MAX_SEED];
    } seed;
    for (size_t i = 0; i < length / 2; i++) {
        int high = hex(text[2 * i]), low = hex(text[2 * i + 1]);
        if (high < 0 || low < 0) return usage();
        seed.bytes[i] = (unsigned char) (high << 4 | low);
    }
    seed.info.buf_size = (int) (length / 2);
    seed.info.entropy_count = seed.info.buf_size * 8;
    int fd = open("/dev/urandom", O_WRONLY | O_CLOEXEC);
    if (fd < 0) return fail("open /dev/urandom");
    if (ioctl(fd, RNDADDENTROPY, &seed.info) != 0) return fail("RNDADDENTROPY");
    if (ioctl(fd, RNDRESEEDCRNG) != 0) return fail("RNDRESEEDCRNG");
    memset(&seed, 0, sizeof seed);
    close(fd);
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 4 && strcmp(argv[1], "clock") == 0) return set_clock(argv[2], argv[3]);
    if (argc == 3 && strcmp(argv[1], "seed") == 0) return reseed(argv[2]);
    return usage();
}
