/* Terminal and socket ioctls: a pseudo-terminal pair (termios, window size, packet
 * mode, the lock and number of the pty), interface queries on loopback, and the
 * queue sizes of a socket and a file. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <termios.h>
#include <unistd.h>

#define SHOW(what, r) printf("%s: %s\n", what, (r) < 0 ? strerrorname_np(errno) : "ok")

static void terminal(void) {
    int master = posix_openpt(O_RDWR | O_NOCTTY);
    if (master < 0) {
        printf("pty: %s\n", strerrorname_np(errno));
        return;
    }
    int locked = -1, n = -1;
    SHOW("TIOCGPTLCK", ioctl(master, TIOCGPTLCK, &locked));
    printf("locked before unlockpt: %d\n", locked);
    grantpt(master);
    unlockpt(master);
    ioctl(master, TIOCGPTLCK, &locked);
    printf("locked after: %d, ptsname ok %d\n", locked,
           ptsname(master) && !strncmp(ptsname(master), "/dev/pts/", 9));
    SHOW("TIOCGPTN", ioctl(master, TIOCGPTN, &n));
    int slave = ioctl(master, TIOCGPTPEER, O_RDWR | O_NOCTTY);
    SHOW("TIOCGPTPEER", slave);
    struct termios tio;
    SHOW("tcgetattr", tcgetattr(slave, &tio));
    cfmakeraw(&tio);
    SHOW("tcsetattr", tcsetattr(slave, TCSANOW, &tio));
    struct termios back;
    tcgetattr(slave, &back);
    printf("raw lflag icanon %d echo %d\n", !!(back.c_lflag & ICANON), !!(back.c_lflag & ECHO));
    struct winsize ws = {.ws_row = 33, .ws_col = 111};
    SHOW("TIOCSWINSZ", ioctl(master, TIOCSWINSZ, &ws));
    struct winsize got = {0};
    ioctl(slave, TIOCGWINSZ, &got);
    printf("window %dx%d\n", got.ws_col, got.ws_row);
    int outq = -1, inq = -1, excl = -1;
    write(slave, "abc", 3);
    usleep(10000);
    SHOW("FIONREAD", ioctl(master, FIONREAD, &inq));
    printf("master can read %d\n", inq);
    SHOW("TIOCOUTQ", ioctl(slave, TIOCOUTQ, &outq));
    SHOW("TIOCEXCL", ioctl(slave, TIOCEXCL));
    SHOW("TIOCGEXCL", ioctl(slave, TIOCGEXCL, &excl));
    printf("exclusive %d\n", excl);
    SHOW("TIOCNXCL", ioctl(slave, TIOCNXCL));
    int pkt = 1, pktget = -1;
    SHOW("TIOCPKT", ioctl(master, TIOCPKT, &pkt));
    SHOW("TIOCGPKT", ioctl(master, TIOCGPKT, &pktget));
    printf("packet mode %d\n", pktget);
    int ldisc = -1;
    SHOW("TIOCGETD", ioctl(slave, TIOCGETD, &ldisc));
    printf("line discipline %d\n", ldisc);
    SHOW("TIOCMGET on a pty", ioctl(slave, TIOCMGET, &n));
    SHOW("unknown ioctl", ioctl(slave, 0x54ff, 0));
    close(slave);
    close(master);
}

static void network(void) {
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    strcpy(ifr.ifr_name, "lo");
    SHOW("SIOCGIFINDEX", ioctl(s, SIOCGIFINDEX, &ifr));
    int index = ifr.ifr_ifindex;
    printf("lo index matches if_nametoindex %d\n", index == (int)if_nametoindex("lo"));
    memset(&ifr, 0, sizeof ifr);
    ifr.ifr_ifindex = index;
    SHOW("SIOCGIFNAME", ioctl(s, SIOCGIFNAME, &ifr));
    printf("name %s\n", ifr.ifr_name);
    SHOW("SIOCGIFFLAGS", ioctl(s, SIOCGIFFLAGS, &ifr));
    printf("loopback flag %d\n", !!(ifr.ifr_flags & IFF_LOOPBACK));
    SHOW("SIOCGIFMTU", ioctl(s, SIOCGIFMTU, &ifr));
    printf("mtu > 0 %d\n", ifr.ifr_mtu > 0);
    struct ifreq reqs[32];
    struct ifconf conf = {.ifc_len = sizeof reqs, .ifc_req = reqs};
    SHOW("SIOCGIFCONF", ioctl(s, SIOCGIFCONF, &conf));
    int has_lo = 0;
    for (int i = 0; i < conf.ifc_len / (int)sizeof(struct ifreq); i++)
        has_lo |= !strcmp(reqs[i].ifr_name, "lo");
    printf("ifconf has lo %d, whole entries %d\n", has_lo, conf.ifc_len % (int)sizeof(struct ifreq) == 0);
    struct ifconf sizing = {.ifc_len = 0, .ifc_buf = NULL};
    SHOW("SIOCGIFCONF sizing", ioctl(s, SIOCGIFCONF, &sizing));
    printf("sizing matches %d\n", sizing.ifc_len == conf.ifc_len);
    strcpy(ifr.ifr_name, "no-such-if");
    SHOW("SIOCGIFINDEX missing", ioctl(s, SIOCGIFINDEX, &ifr));
    int sv[2], inq = -1, outq = -1, mark = -1;
    socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
    write(sv[0], "12345", 5);
    SHOW("SIOCINQ", ioctl(sv[1], FIONREAD, &inq));
    SHOW("SIOCOUTQ", ioctl(sv[0], TIOCOUTQ, &outq));
    printf("inq %d outq >= 0 %d\n", inq, outq >= 0);
    int tcp = socket(AF_INET, SOCK_STREAM, 0);
    SHOW("SIOCATMARK", ioctl(tcp, SIOCATMARK, &mark));
    printf("at mark %d\n", mark);
    close(tcp);
    close(sv[0]);
    close(sv[1]);
    close(s);
}

static void files(void) {
    char path[] = "/tmp/pemu-ioctl-XXXXXX";
    int fd = mkstemp(path);
    write(fd, "0123456789", 10);
    long long size = -1;
    SHOW("FIOQSIZE", ioctl(fd, FIOQSIZE, &size));
    printf("qsize >= 0 %d\n", size >= 0);
    SHOW("TCGETS on a file", ioctl(fd, TCGETS, &(struct termios){0}));
    unlink(path);
    close(fd);
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    terminal();
    network();
    files();
    return 0;
}
