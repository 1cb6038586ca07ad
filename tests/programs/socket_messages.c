/* sendmsg/recvmsg/sendmmsg/recvmmsg: scatter-gather, SCM_RIGHTS, SCM_CREDENTIALS,
 * MSG_* flags, addresses, and the kernel's errors for bad headers. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

static void rights_and_credentials(void) {
    int sv[2], pipefd[2], on = 1;
    socketpair(AF_UNIX, SOCK_DGRAM, 0, sv);
    setsockopt(sv[1], SOL_SOCKET, SO_PASSCRED, &on, sizeof on);
    pipe(pipefd);
    write(pipefd[1], "through the passed fd", 21);
    close(pipefd[1]);

    char part1[] = "part one, ", part2[] = "part two";
    struct iovec out[2] = {{part1, strlen(part1)}, {part2, strlen(part2)}};
    union {
        char buf[CMSG_SPACE(sizeof(int)) + CMSG_SPACE(sizeof(struct ucred))];
        struct cmsghdr align;
    } control;
    memset(&control, 0, sizeof control);
    struct msghdr msg = {0};
    msg.msg_iov = out;
    msg.msg_iovlen = 2;
    msg.msg_control = control.buf;
    msg.msg_controllen = sizeof control.buf;
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &pipefd[0], sizeof(int));
    c = CMSG_NXTHDR(&msg, c);
    struct ucred me = {getpid(), getuid(), getgid()};
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_CREDENTIALS;
    c->cmsg_len = CMSG_LEN(sizeof me);
    memcpy(CMSG_DATA(c), &me, sizeof me);
    printf("sendmsg: %zd\n", sendmsg(sv[0], &msg, 0));
    close(pipefd[0]);

    char a[5], b[7], d[32];
    struct iovec in[3] = {{a, sizeof a}, {b, sizeof b}, {d, sizeof d}};
    union {
        char buf[256];
        struct cmsghdr align;
    } rcontrol;
    struct msghdr rmsg = {0};
    rmsg.msg_iov = in;
    rmsg.msg_iovlen = 3;
    rmsg.msg_control = rcontrol.buf;
    rmsg.msg_controllen = sizeof rcontrol.buf;
    ssize_t n = recvmsg(sv[1], &rmsg, MSG_CMSG_CLOEXEC);
    printf("recvmsg: %zd, flags 0x%x, controllen %zu: [%.5s|%.7s|%.*s]\n", n, rmsg.msg_flags,
           (size_t)rmsg.msg_controllen, a, b, (int)(n > 12 ? n - 12 : 0), d);
    for (c = CMSG_FIRSTHDR(&rmsg); c; c = CMSG_NXTHDR(&rmsg, c)) {
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
            int fd;
            memcpy(&fd, CMSG_DATA(c), sizeof fd);
            char text[64] = {0};
            ssize_t got = read(fd, text, sizeof text - 1);
            printf("SCM_RIGHTS: len %zu, cloexec %d, read %zd: %s\n", (size_t)c->cmsg_len,
                   (fcntl(fd, F_GETFD) & FD_CLOEXEC) != 0, got, text);
            close(fd);
        } else if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS) {
            struct ucred who;
            memcpy(&who, CMSG_DATA(c), sizeof who);
            printf("SCM_CREDENTIALS: len %zu, pid is mine %d, uid %d, gid %d\n",
                   (size_t)c->cmsg_len, who.pid == getpid(), who.uid == getuid(),
                   who.gid == getgid());
        } else {
            printf("cmsg level %d type %d\n", c->cmsg_level, c->cmsg_type);
        }
    }

    /* a control buffer too small for the descriptor: MSG_CTRUNC, the fd is dropped */
    int devnull = open("/dev/null", O_RDONLY);
    memcpy(CMSG_DATA(CMSG_FIRSTHDR(&msg)), &devnull, sizeof(int));
    msg.msg_controllen = CMSG_SPACE(sizeof(int));
    sendmsg(sv[0], &msg, 0);
    char small[4];
    rmsg.msg_controllen = sizeof(struct cmsghdr) - 1;
    struct iovec one = {small, sizeof small};
    rmsg.msg_iov = &one;
    rmsg.msg_iovlen = 1;
    n = recvmsg(sv[1], &rmsg, 0);
    printf("truncated: %zd, MSG_TRUNC %d, MSG_CTRUNC %d\n", n, !!(rmsg.msg_flags & MSG_TRUNC),
           !!(rmsg.msg_flags & MSG_CTRUNC));

    /* MSG_PEEK|MSG_TRUNC: the real length without consuming the message */
    send(sv[0], "0123456789", 10, 0);
    rmsg.msg_control = NULL;
    rmsg.msg_controllen = 0;
    n = recvmsg(sv[1], &rmsg, MSG_PEEK | MSG_TRUNC);
    printf("peek: %zd, flags 0x%x\n", n, rmsg.msg_flags);
    n = recvmsg(sv[1], &rmsg, 0);
    printf("read after peek: %zd [%.4s]\n", n, small);
    n = recvmsg(sv[1], &rmsg, MSG_DONTWAIT);
    printf("empty, MSG_DONTWAIT: %zd %s\n", n, n < 0 ? strerrorname_np(errno) : "");

    /* errors: a bad iovec array, too many iovecs */
    rmsg.msg_iov = (struct iovec *)8;
    send(sv[0], "x", 1, 0);
    n = recvmsg(sv[1], &rmsg, 0);
    printf("bad iov: %zd %s\n", n, n < 0 ? strerrorname_np(errno) : "");
    rmsg.msg_iov = &one;
    rmsg.msg_iovlen = 1025;
    n = recvmsg(sv[1], &rmsg, 0);
    printf("1025 iovecs: %zd %s\n", n, n < 0 ? strerrorname_np(errno) : "");
    n = sendmsg(sv[0], (struct msghdr *)16, 0);
    printf("bad msghdr: %zd %s\n", n, n < 0 ? strerrorname_np(errno) : "");
    close(sv[0]);
    close(sv[1]);
    close(devnull);
}

static void many_messages(void) {
    int sv[2];
    socketpair(AF_UNIX, SOCK_DGRAM, 0, sv);
    char *words[3] = {"alpha", "be", "gamma delta"};
    struct mmsghdr out[3];
    struct iovec outv[3];
    memset(out, 0, sizeof out);
    for (int i = 0; i < 3; i++) {
        outv[i].iov_base = words[i];
        outv[i].iov_len = strlen(words[i]);
        out[i].msg_hdr.msg_iov = &outv[i];
        out[i].msg_hdr.msg_iovlen = 1;
    }
    int sent = sendmmsg(sv[0], out, 3, 0);
    printf("sendmmsg: %d, lens %u %u %u\n", sent, out[0].msg_len, out[1].msg_len,
           out[2].msg_len);
    char bufs[4][16];
    struct mmsghdr in[4];
    struct iovec inv[4];
    memset(in, 0, sizeof in);
    for (int i = 0; i < 4; i++) {
        inv[i].iov_base = bufs[i];
        inv[i].iov_len = sizeof bufs[i];
        in[i].msg_hdr.msg_iov = &inv[i];
        in[i].msg_hdr.msg_iovlen = 1;
    }
    int got = recvmmsg(sv[1], in, 4, MSG_DONTWAIT, NULL);
    printf("recvmmsg: %d:", got);
    for (int i = 0; i < got; i++)
        printf(" [%.*s]", (int)in[i].msg_len, bufs[i]);
    printf("\n");
    close(sv[0]);
    close(sv[1]);
}

static void addresses(void) {
    int rx = socket(AF_INET, SOCK_DGRAM, 0), tx = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in where = {0};
    where.sin_family = AF_INET;
    where.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof where;
    if (bind(rx, (struct sockaddr *)&where, sizeof where) < 0) {
        printf("udp: no loopback\n");
        return;
    }
    getsockname(rx, (struct sockaddr *)&where, &len);
    struct iovec v = {"datagram", 8};
    struct msghdr msg = {0};
    msg.msg_name = &where;
    msg.msg_namelen = sizeof where;
    msg.msg_iov = &v;
    msg.msg_iovlen = 1;
    printf("udp sendmsg: %zd\n", sendmsg(tx, &msg, 0));
    struct sockaddr_in from;
    struct sockaddr_in sender;
    socklen_t slen = sizeof sender;
    getsockname(tx, (struct sockaddr *)&sender, &slen);
    char buf[16];
    struct iovec rv = {buf, sizeof buf};
    struct msghdr rmsg = {0};
    memset(&from, 0, sizeof from);
    rmsg.msg_name = &from;
    rmsg.msg_namelen = sizeof from + 4;
    rmsg.msg_iov = &rv;
    rmsg.msg_iovlen = 1;
    ssize_t n = recvmsg(rx, &rmsg, 0);
    printf("udp recvmsg: %zd [%.*s] namelen %u, from the sender %d\n", n, (int)n, buf,
           rmsg.msg_namelen, from.sin_port == sender.sin_port);
    close(rx);
    close(tx);
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    rights_and_credentials();
    many_messages();
    addresses();
    return 0;
}
