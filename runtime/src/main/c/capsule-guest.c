/*
 * capsule-guest: the microVM guest's agent and network set-up, one static program so that it runs on any template
 * whatever its C library, and so that the work after a restore is one process, not a dozen busybox forks (each of
 * which costs tens of milliseconds under TCG).
 *
 *     capsule-guest configure ADDRESS/PREFIX GATEWAY HOSTNAME NAMESERVERS
 *         give the guest the sandbox's identity: eth0's address and default route (over netlink), hostname,
 *         /etc/hostname, /etc/hosts and /etc/resolv.conf (NAMESERVERS comma-separated). The guest init runs it at
 *         boot with the kernel command line's values.
 *
 *     capsule-guest agent TTY
 *         serve the driver's commands, one per line, on the serial console TTY (the one channel that works before
 *         a restored guest has its new address), answering "capsule-ok NONCE" or "capsule-failed NONCE reason":
 *           restore NONCE SECONDS NANOS SEED_HEX ADDRESS/PREFIX GATEWAY HOSTNAME NAMESERVERS
 *               after every restore of a memory snapshot: set the clock (it stood still while the VM was saved),
 *               mix the host's entropy into the kernel's pool and reseed its generator at once (every clone of a
 *               snapshot would otherwise draw the same numbers until the next scheduled reseed), then configure
 *           sync NONCE
 *               write the page cache to disk, before the VM is stopped without its memory
 *
 * Exit codes: 0 done, 1 failed (the reason on stderr), 2 usage.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/neighbour.h>
#include <linux/netlink.h>
#include <linux/random.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#define INTERFACE "eth0"
#define MAX_SEED 512
#define MAX_ENTRIES 64

static char failure[256];

/* Records why the current step failed; returns -1 for the caller to pass on. */
static int fail(const char *format, ...) {
    va_list args;
    va_start(args, format);
    vsnprintf(failure, sizeof failure, format, args);
    va_end(args);
    return -1;
}

/* --- netlink -------------------------------------------------------------------------------------------------- */

struct request {
    struct nlmsghdr header;
    union {
        struct ifaddrmsg address;
        struct rtmsg route;
        struct ndmsg neighbour;
    } body;
    char attributes[128];
};

static void attribute(struct request *request, int type, const void *data, int length) {
    struct rtattr *attr = (struct rtattr *) ((char *) request + NLMSG_ALIGN(request->header.nlmsg_len));
    attr->rta_type = type;
    attr->rta_len = RTA_LENGTH(length);
    memcpy(RTA_DATA(attr), data, length);
    request->header.nlmsg_len = NLMSG_ALIGN(request->header.nlmsg_len) + RTA_ALIGN(attr->rta_len);
}

static void start(struct request *request, int type, int flags, size_t body) {
    memset(request, 0, sizeof *request);
    request->header.nlmsg_len = NLMSG_LENGTH(body);
    request->header.nlmsg_type = type;
    request->header.nlmsg_flags = NLM_F_REQUEST | flags;
    static unsigned sequence;
    request->header.nlmsg_seq = ++sequence;
}

/* Sends a request that asks for an acknowledgement and returns 0 or -errno from the kernel's answer. */
static int talk(int fd, struct request *request) {
    request->header.nlmsg_flags |= NLM_F_ACK;
    if (send(fd, request, request->header.nlmsg_len, 0) < 0) return -errno;
    char buffer[4096];
    for (;;) {
        ssize_t length = recv(fd, buffer, sizeof buffer, 0);
        if (length < 0) return -errno;
        for (struct nlmsghdr *h = (struct nlmsghdr *) buffer; NLMSG_OK(h, (size_t) length); h = NLMSG_NEXT(h, length)) {
            if (h->nlmsg_seq == request->header.nlmsg_seq && h->nlmsg_type == NLMSG_ERROR) {
                return ((struct nlmsgerr *) NLMSG_DATA(h))->error;
            }
        }
    }
}

/* What a dump found that is to be deleted: an address (with its prefix) or a neighbour. */
struct entry {
    struct in_addr address;
    unsigned char prefix;
};

/* Dumps IPv4 addresses (RTM_GETADDR) or neighbours (RTM_GETNEIGH) of interface `index` into `entries`. */
static int dump(int fd, int type, int index, struct entry *entries, int *count) {
    struct request request;
    start(&request, type, NLM_F_DUMP, type == RTM_GETADDR ? sizeof(struct ifaddrmsg) : sizeof(struct ndmsg));
    if (type == RTM_GETADDR) request.body.address.ifa_family = AF_INET;
    else request.body.neighbour.ndm_family = AF_INET;
    if (send(fd, &request, request.header.nlmsg_len, 0) < 0) return -errno;
    char buffer[16384];
    *count = 0;
    for (;;) {
        ssize_t length = recv(fd, buffer, sizeof buffer, 0);
        if (length < 0) return -errno;
        for (struct nlmsghdr *h = (struct nlmsghdr *) buffer; NLMSG_OK(h, (size_t) length); h = NLMSG_NEXT(h, length)) {
            if (h->nlmsg_type == NLMSG_DONE) return 0;
            if (h->nlmsg_type == NLMSG_ERROR) return ((struct nlmsgerr *) NLMSG_DATA(h))->error;
            struct rtattr *attr;
            int attributes;
            unsigned char prefix = 32;
            int wanted;
            if (type == RTM_GETADDR) {
                struct ifaddrmsg *address = NLMSG_DATA(h);
                wanted = (int) address->ifa_index == index;
                prefix = address->ifa_prefixlen;
                attr = IFA_RTA(address);
                attributes = IFA_PAYLOAD(h);
            } else {
                struct ndmsg *neighbour = NLMSG_DATA(h);
                wanted = neighbour->ndm_ifindex == index && !(neighbour->ndm_state & (NUD_NOARP | NUD_PERMANENT));
                attr = RTM_RTA(neighbour);
                attributes = RTM_PAYLOAD(h);
            }
            int key = type == RTM_GETADDR ? IFA_LOCAL : NDA_DST;
            for (; wanted && RTA_OK(attr, attributes); attr = RTA_NEXT(attr, attributes)) {
                if (attr->rta_type == key && *count < MAX_ENTRIES) {
                    memcpy(&entries[*count].address, RTA_DATA(attr), sizeof(struct in_addr));
                    entries[(*count)++].prefix = prefix;
                }
            }
        }
    }
}

static int link_up(const char *name) {
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return fail("socket: %s", strerror(errno));
    struct ifreq request;
    memset(&request, 0, sizeof request);
    strncpy(request.ifr_name, name, IFNAMSIZ - 1);
    int result = ioctl(fd, SIOCGIFFLAGS, &request);
    if (result == 0 && !(request.ifr_flags & IFF_UP)) {
        request.ifr_flags |= IFF_UP;
        result = ioctl(fd, SIOCSIFFLAGS, &request);
    }
    int error = errno;
    close(fd);
    return result == 0 ? 0 : fail("cannot bring %s up: %s", name, strerror(error));
}

/* eth0 gets exactly `address`/`prefix` and a default route via `gateway`; the neighbours it knew are forgotten. */
static int configure_network(const char *cidr, const char *gateway_text) {
    char text[64];
    snprintf(text, sizeof text, "%s", cidr);
    char *slash = strchr(text, '/');
    struct in_addr address, gateway;
    int prefix = slash ? atoi(slash + 1) : -1;
    if (slash) *slash = '\0';
    if (!slash || prefix < 1 || prefix > 32 || inet_pton(AF_INET, text, &address) != 1
        || inet_pton(AF_INET, gateway_text, &gateway) != 1) {
        return fail("bad address %s or gateway %s", cidr, gateway_text);
    }
    if (link_up("lo") != 0 || link_up(INTERFACE) != 0) return -1;
    int index = (int) if_nametoindex(INTERFACE);
    if (index == 0) return fail("no interface %s", INTERFACE);
    int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
    if (fd < 0) return fail("netlink: %s", strerror(errno));
    struct entry entries[MAX_ENTRIES];
    int count, error;
    struct request request;

    if ((error = dump(fd, RTM_GETADDR, index, entries, &count)) != 0) goto netlink;
    for (int i = 0; i < count; i++) {
        if (entries[i].address.s_addr == address.s_addr && entries[i].prefix == prefix) continue;
        start(&request, RTM_DELADDR, 0, sizeof(struct ifaddrmsg));
        request.body.address = (struct ifaddrmsg) {.ifa_family = AF_INET, .ifa_prefixlen = entries[i].prefix,
                                                    .ifa_index = (unsigned) index};
        attribute(&request, IFA_LOCAL, &entries[i].address, sizeof(struct in_addr));
        if ((error = talk(fd, &request)) != 0 && error != -EADDRNOTAVAIL) goto netlink;
    }

    start(&request, RTM_NEWADDR, NLM_F_CREATE | NLM_F_REPLACE, sizeof(struct ifaddrmsg));
    request.body.address = (struct ifaddrmsg) {.ifa_family = AF_INET, .ifa_prefixlen = (unsigned char) prefix,
                                                .ifa_scope = RT_SCOPE_UNIVERSE, .ifa_index = (unsigned) index};
    struct in_addr broadcast = {.s_addr = address.s_addr | htonl(prefix == 32 ? 0 : 0xffffffffu >> prefix)};
    attribute(&request, IFA_LOCAL, &address, sizeof address);
    attribute(&request, IFA_ADDRESS, &address, sizeof address);
    attribute(&request, IFA_BROADCAST, &broadcast, sizeof broadcast);
    if ((error = talk(fd, &request)) != 0) goto netlink;

    start(&request, RTM_NEWROUTE, NLM_F_CREATE | NLM_F_REPLACE, sizeof(struct rtmsg));
    request.body.route = (struct rtmsg) {.rtm_family = AF_INET, .rtm_table = RT_TABLE_MAIN,
                                         .rtm_protocol = RTPROT_BOOT, .rtm_scope = RT_SCOPE_UNIVERSE,
                                         .rtm_type = RTN_UNICAST};
    attribute(&request, RTA_GATEWAY, &gateway, sizeof gateway);
    attribute(&request, RTA_OIF, &index, sizeof index);
    if ((error = talk(fd, &request)) != 0) goto netlink;

    /* a restored guest remembers the MAC of the gateway it had when the snapshot was taken */
    if ((error = dump(fd, RTM_GETNEIGH, index, entries, &count)) != 0) goto netlink;
    for (int i = 0; i < count; i++) {
        start(&request, RTM_DELNEIGH, 0, sizeof(struct ndmsg));
        request.body.neighbour = (struct ndmsg) {.ndm_family = AF_INET, .ndm_ifindex = index};
        attribute(&request, NDA_DST, &entries[i].address, sizeof(struct in_addr));
        talk(fd, &request); /* one that went away meanwhile is fine */
    }
    close(fd);
    return 0;
netlink:
    close(fd);
    return fail("configuring %s over netlink: %s", INTERFACE, strerror(-error));
}

/* --- files, clock, entropy ------------------------------------------------------------------------------------ */

static int write_file(const char *path, const char *content) {
    char temp[128];
    snprintf(temp, sizeof temp, "%s.capsule-tmp", path);
    int fd = open(temp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return fail("cannot write %s: %s", temp, strerror(errno));
    size_t length = strlen(content);
    int ok = write(fd, content, length) == (ssize_t) length;
    int error = errno;
    close(fd);
    if (!ok) return fail("cannot write %s: %s", temp, strerror(error));
    if (rename(temp, path) != 0) return fail("cannot replace %s: %s", path, strerror(errno));
    return 0;
}

static int configure(const char *cidr, const char *gateway, const char *hostname, const char *nameservers) {
    if (configure_network(cidr, gateway) != 0) return -1;
    if (sethostname(hostname, strlen(hostname)) != 0) return fail("sethostname: %s", strerror(errno));
    char content[1024];
    snprintf(content, sizeof content, "%s\n", hostname);
    if (write_file("/etc/hostname", content) != 0) return -1;
    snprintf(content, sizeof content,
             "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t%s\n", hostname);
    if (write_file("/etc/hosts", content) != 0) return -1;
    char servers[512];
    snprintf(servers, sizeof servers, "%s", nameservers);
    size_t used = 0;
    content[0] = '\0';
    for (char *save, *server = strtok_r(servers, ",", &save); server; server = strtok_r(NULL, ",", &save)) {
        used += snprintf(content + used, sizeof content - used, "nameserver %s\n", server);
        if (used >= sizeof content) return fail("too many nameservers");
    }
    return write_file("/etc/resolv.conf", content);
}

static int set_clock(const char *seconds, const char *nanos) {
    char *end;
    errno = 0;
    struct timespec now = {.tv_sec = strtoll(seconds, &end, 10)};
    if (errno != 0 || *end != '\0') return fail("bad seconds %s", seconds);
    now.tv_nsec = strtol(nanos, &end, 10);
    if (errno != 0 || *end != '\0' || now.tv_nsec < 0 || now.tv_nsec >= 1000000000L) return fail("bad nanos %s", nanos);
    if (clock_settime(CLOCK_REALTIME, &now) != 0) return fail("clock_settime: %s", strerror(errno));
    return 0;
}

static int hex(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static int reseed(const char *text) {
    size_t length = strlen(text);
    if (length == 0 || length % 2 != 0 || length / 2 > MAX_SEED) return fail("bad seed");
    struct {
        struct rand_pool_info info;
        unsigned char bytes[MAX_SEED];
    } seed;
    for (size_t i = 0; i < length / 2; i++) {
        int high = hex(text[2 * i]), low = hex(text[2 * i + 1]);
        if (high < 0 || low < 0) return fail("bad seed");
        seed.bytes[i] = (unsigned char) (high << 4 | low);
    }
    seed.info.buf_size = (int) (length / 2);
    seed.info.entropy_count = seed.info.buf_size * 8;
    int fd = open("/dev/urandom", O_WRONLY | O_CLOEXEC);
    if (fd < 0) return fail("open /dev/urandom: %s", strerror(errno));
    int result = 0;
    if (ioctl(fd, RNDADDENTROPY, &seed.info) != 0) result = fail("RNDADDENTROPY: %s", strerror(errno));
    else if (ioctl(fd, RNDRESEEDCRNG) != 0) result = fail("RNDRESEEDCRNG: %s", strerror(errno));
    memset(&seed, 0, sizeof seed);
    close(fd);
    return result;
}

/* --- the agent ------------------------------------------------------------------------------------------------ */

/* Runs one command line; its words are split in place. */
static int command(char *line, const char **nonce) {
    char *words[12];
    int count = 0;
    for (char *save, *word = strtok_r(line, " \t\r\n", &save); word && count < 12;
         word = strtok_r(NULL, " \t\r\n", &save)) {
        words[count++] = word;
    }
    *nonce = count > 1 ? words[1] : "-";
    if (count == 9 && strcmp(words[0], "restore") == 0) {
        if (set_clock(words[2], words[3]) != 0 || reseed(words[4]) != 0) return -1;
        return configure(words[5], words[6], words[7], words[8]);
    }
    if (count == 2 && strcmp(words[0], "sync") == 0) {
        sync();
        return 0;
    }
    return fail("unknown command");
}

__attribute__((noreturn)) static void agent(const char *tty) {
    int fd;
    while ((fd = open(tty, O_RDWR | O_NOCTTY | O_CLOEXEC)) < 0) {
        sleep(1);
    }
    /* no echo: the host's commands carry entropy, which must not end up in the console log */
    struct termios settings;
    if (tcgetattr(fd, &settings) == 0) {
        settings.c_lflag &= ~(tcflag_t) (ECHO | ECHONL);
        tcsetattr(fd, TCSANOW, &settings);
    }
    char line[4096];
    for (;;) {
        ssize_t length = read(fd, line, sizeof line - 1);
        if (length <= 0) {
            if (length < 0 && errno != EINTR && errno != EAGAIN) sleep(1);
            continue;
        }
        line[length] = '\0';
        if (strspn(line, " \t\r\n") == (size_t) length) continue;
        const char *nonce;
        failure[0] = '\0';
        char answer[512];
        if (command(line, &nonce) == 0) snprintf(answer, sizeof answer, "capsule-ok %s\n", nonce);
        else snprintf(answer, sizeof answer, "capsule-failed %s %s\n", nonce, failure);
        if (write(fd, answer, strlen(answer)) < 0) {
            /* the console went away; the driver times out and reports it */
        }
    }
}

int main(int argc, char **argv) {
    if (argc == 6 && strcmp(argv[1], "configure") == 0) {
        if (configure(argv[2], argv[3], argv[4], argv[5]) == 0) return 0;
        fprintf(stderr, "capsule-guest: %s\n", failure);
        return 1;
    }
    if (argc == 3 && strcmp(argv[1], "agent") == 0) agent(argv[2]);
    fprintf(stderr, "usage: capsule-guest configure ADDRESS/PREFIX GATEWAY HOSTNAME NAMESERVERS | agent TTY\n");
    return 2;
}
