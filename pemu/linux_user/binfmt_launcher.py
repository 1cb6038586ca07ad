"""The binfmt_misc launcher: a tiny static x86-64 ELF that hands a program to the pemu server.

binfmt_misc runs its interpreter for every foreign program the kernel starts.  A Python
interpreter there costs a Python start and a pemu import per process (half a second,
where a ``./configure`` starts thousands), and inside a chroot it needs Python in the
chroot.  This launcher needs neither: registered with ``F`` it is opened once, at
registration, and it only forwards the request to a resident ``pemu-binfmt --serve``
process (binfmt_server.py), which forks an emulator that has everything imported.

The launcher is machine code that pemu generates (with the native backend's
assembler), not a compiled C program.  It:

1. finds argc, argv, envp and the auxiliary vector on its initial stack, and from the
   auxv AT_FLAGS (flag ``P``) and AT_EXECFD (flags ``O``/``C``);
2. opens its root and working directories (O_PATH), reads its umask;
3. connects to the server's abstract UNIX socket (reachable from any chroot in the
   same network namespace) and sends one message: a fixed header (``HEADER``), the
   argument and environment strings exactly as the kernel laid them out (contiguous,
   NUL-terminated), and with SCM_RIGHTS its open standard descriptors, root, cwd
   and the program descriptor;
   The header also carries the launcher's blocked and ignored signals, which the
   program inherits (as across any execve);
4. passes on the signals a terminal or a shell sends to the process it started
   (``FORWARDED``: ^C, ^Z, fg, SIGTERM, ...) to the server, which sends them to the
   program; a stop signal stops the launcher as well, so job control sees the job
   stopped, and SIGCONT resumes both.  (The program itself stays in the server's
   session: no process can join another session, so ``tcsetpgrp`` from inside fails.)
5. waits for the 8-byte reply (``REPLY``: exited with a code, or killed by a signal)
   and ends the same way, so that the shell or make that started it sees the
   program's own status.  If the launcher itself is killed, the server sees the
   connection close and kills the emulated process.
"""

from __future__ import annotations

import struct

from pemu.accel.tcg.backend.x86_64.encoder import (
    ADD,
    AND,
    CC_E,
    CC_L,
    CC_NE,
    CMP,
    OR,
    R8,
    R9,
    R10,
    R12,
    R13,
    R14,
    R15,
    RAX,
    RBP,
    RBX,
    RCX,
    RDI,
    RDX,
    RSI,
    RSP,
    SHL,
    SUB,
    Assembler,
    Label,
    Mem,
)

MAGIC = 0x504D4246  # "FBMP": a pemu binfmt request
VERSION = 2
# magic, version, argc, envc, at_flags, umask, fd mask, strings length, and the
# launcher's blocked and ignored signals (bit n-1 for signal n), which the program
# inherits as it would have from its caller without binfmt
HEADER = struct.Struct("<IIIIQIIQQQ")
H_SIGMASK, H_SIGIGN = 40, 48
# kind (REPLY_EXIT / REPLY_SIGNAL), value; launcher -> server: FORWARD_SIGNAL, signal
REPLY = struct.Struct("<II")
REPLY_EXIT, REPLY_SIGNAL, FORWARD_SIGNAL = 0, 1, 2
# What the launcher passes on to its program while it waits: what a terminal, a shell's
# job control or a parent sends to the process it started (^C, ^\, ^Z, fg, resize,
# kill).  The stop signals also stop the launcher, so the shell sees the job stopped.
FORWARDED = (1, 2, 3, 10, 12, 15, 18, 20, 21, 22, 28)  # HUP INT QUIT USR1 USR2 TERM
STOPPING = (20, 21, 22)                                 # CONT TSTP TTIN TTOU WINCH
# which descriptors follow in SCM_RIGHTS, in this order (bits of the header's fd mask)
FD_STDIN, FD_STDOUT, FD_STDERR, FD_ROOT, FD_CWD, FD_PROGRAM = (1 << i for i in range(6))
MAX_FDS = 6

BASE = 0x40_0000
CODE_OFFSET = 0x100
DATA_OFFSET = 0x800  # the data area: constants and the message being built

# data-area layout (offsets from RBP = BASE + DATA_OFFSET)
D_SOCKADDR = 0x000
D_MESSAGE = 0x080
D_SLASH = 0x1F0  # "/\0"
D_DOT = 0x1F8    # ".\0"
D_HEADER = 0x200
D_IOV = 0x240
D_MSGHDR = 0x260
D_CMSG = 0x2A0
D_REPLY = 0x2E0
D_SIGACTION = 0x300  # 32 zero bytes: SIG_DFL, no flags, empty mask
D_SIGSET = 0x320
D_OLDACT = 0x340  # rt_sigaction's old action, while the ignored signals are read
D_FORWARD_SET = 0x360  # sigset of FORWARDED
D_POLLFDS = 0x368      # {socket, POLLIN}, {signalfd, POLLIN}
D_FORWARD = 0x378      # REPLY-shaped message: FORWARD_SIGNAL, signal
D_SSI = 0x380          # one struct signalfd_siginfo
DATA_SIZE = 0x400

SYS_READ, SYS_WRITE, SYS_OPEN = 0, 1, 2
SYS_RT_SIGACTION, SYS_RT_SIGPROCMASK = 13, 14
SYS_SOCKET, SYS_CONNECT, SYS_SENDMSG = 41, 42, 46
SYS_GETPID, SYS_KILL, SYS_FCNTL, SYS_UMASK, SYS_EXIT_GROUP = 39, 62, 72, 95, 231
SIG_IGN, SIG_BLOCK, NSIG, SIGSTOP = 1, 0, 64, 19
SYS_POLL, SYS_SENDTO, SYS_SIGNALFD4 = 7, 44, 289
SFD_CLOEXEC, POLLIN, MSG_NOSIGNAL = 0o2000000, 1, 0x4000
SSI_SIZE = 128
O_PATH_DIR = 0o10000000 | 0o200000 | 0o2000000  # O_PATH | O_DIRECTORY | O_CLOEXEC
AF_UNIX, SOCK_STREAM_CLOEXEC = 1, 1 | 0o2000000
AT_EXECFD, AT_FLAGS = 2, 8
EXIT_NO_SERVER = 126


def socket_name(arch: str, name: str | None = None) -> bytes:
    """The abstract socket the server listens on and the launcher connects to."""
    return ("pemu-binfmt-" + (name or arch)).encode()


def _syscall(a: Assembler, number: int) -> None:
    a.mov_ri(RAX, number)
    a.byte(0x0F, 0x05)


def build_launcher(socket: bytes) -> bytes:
    """The launcher ELF for the server listening on abstract socket ``socket``."""
    if not 0 < len(socket) <= 100 or b"\0" in socket:
        raise ValueError("the socket name must be 1 to 100 bytes without NUL")
    message = (b"pemu-binfmt: no pemu server answers on @" + socket
               + b" (start it with: pemu-binfmt --serve)\n")
    data_base = BASE + DATA_OFFSET
    a = Assembler()
    fail = Label()

    a.mov_rr(64, R12, RSP)                       # r12 = initial stack
    a.mov_ri(RBP, data_base)
    a.load(64, RAX, Mem(R12))                    # argc
    a.store(4, Mem(RBP, D_HEADER + 8), RAX)
    a.lea(RBX, Mem(R12, 16, RAX, 8))             # rbx = &envp[0]
    a.mov_ri(RCX, 0)
    count_env, counted = Label(), Label()
    a.bind(count_env)
    a.alu_ri(CMP, 64, Mem(RBX, 0, RCX, 8), 0)
    a.jcc(CC_E, counted)
    a.alu_ri(ADD, 64, RCX, 1)
    a.jmp(count_env)
    a.bind(counted)
    a.store(4, Mem(RBP, D_HEADER + 12), RCX)     # envc
    a.lea(R14, Mem(RBX, 8, RCX, 8))              # r14 = auxv

    # The strings run from argv[0] to the end of the last one (envp's, else argv's).
    a.load(64, R15, Mem(R12, 8))                 # r15 = argv[0]
    last_is_env, have_last = Label(), Label()
    a.alu_ri(CMP, 64, RCX, 0)
    a.jcc(CC_NE, last_is_env)
    a.load(64, RAX, Mem(R12))
    a.load(64, RSI, Mem(R12, 0, RAX, 8))         # argv[argc - 1]
    a.jmp(have_last)
    a.bind(last_is_env)
    a.load(64, RSI, Mem(RBX, -8, RCX, 8))        # envp[envc - 1]
    a.bind(have_last)
    strlen, at_end = Label(), Label()
    a.bind(strlen)
    a.op(b"\x80", 7, Mem(RSI), 32)               # cmp byte [rsi], 0
    a.byte(0)
    a.jcc(CC_E, at_end)
    a.alu_ri(ADD, 64, RSI, 1)
    a.jmp(strlen)
    a.bind(at_end)
    a.alu_ri(ADD, 64, RSI, 1)
    a.alu_rr(SUB, 64, RSI, R15)                  # rsi = length of all strings
    a.store(8, Mem(RBP, D_HEADER + 32), RSI)
    a.store(8, Mem(RBP, D_IOV + 16), R15)
    a.store(8, Mem(RBP, D_IOV + 24), RSI)

    # Auxiliary vector: AT_FLAGS and AT_EXECFD (r13 = program fd or -1).
    a.mov_ri(R13, (1 << 64) - 1)
    walk, walked, not_flags, not_execfd = Label(), Label(), Label(), Label()
    a.bind(walk)
    a.load(64, RAX, Mem(R14))
    a.alu_ri(CMP, 64, RAX, 0)
    a.jcc(CC_E, walked)
    a.alu_ri(CMP, 64, RAX, AT_FLAGS)
    a.jcc(CC_NE, not_flags)
    a.load(64, RDX, Mem(R14, 8))
    a.store(8, Mem(RBP, D_HEADER + 16), RDX)
    a.bind(not_flags)
    a.alu_ri(CMP, 64, RAX, AT_EXECFD)
    a.jcc(CC_NE, not_execfd)
    a.load(64, R13, Mem(R14, 8))
    a.bind(not_execfd)
    a.alu_ri(ADD, 64, R14, 16)
    a.jmp(walk)
    a.bind(walked)

    a.mov_ri(RDI, 0)                             # umask: read it, then put it back
    _syscall(a, SYS_UMASK)
    a.store(4, Mem(RBP, D_HEADER + 24), RAX)
    a.mov_rr(64, RDI, RAX)
    _syscall(a, SYS_UMASK)

    # Signals: the blocked mask, and which are ignored (rbx = signal, r15 = bits).
    a.mov_ri(RDI, SIG_BLOCK)
    a.mov_ri(RSI, 0)
    a.lea(RDX, Mem(RBP, D_HEADER + H_SIGMASK))
    a.mov_ri(R10, 8)
    _syscall(a, SYS_RT_SIGPROCMASK)
    a.mov_ri(RBX, 1)
    a.mov_ri(R15, 0)
    next_signal, not_ignored = Label(), Label()
    a.bind(next_signal)
    a.mov_rr(64, RDI, RBX)
    a.mov_ri(RSI, 0)
    a.lea(RDX, Mem(RBP, D_OLDACT))
    a.mov_ri(R10, 8)
    _syscall(a, SYS_RT_SIGACTION)
    a.alu_ri(CMP, 64, RAX, 0)
    a.jcc(CC_NE, not_ignored)
    a.alu_ri(CMP, 64, Mem(RBP, D_OLDACT), SIG_IGN)
    a.jcc(CC_NE, not_ignored)
    a.lea(RCX, Mem(RBX, -1))
    a.mov_ri(RAX, 1)
    a.shift_cl(SHL, 64, RAX)
    a.alu_rr(OR, 64, R15, RAX)
    a.bind(not_ignored)
    a.alu_ri(ADD, 64, RBX, 1)
    a.alu_ri(CMP, 64, RBX, NSIG + 1)
    a.jcc(CC_L, next_signal)
    a.store(8, Mem(RBP, D_HEADER + H_SIGIGN), R15)

    # Descriptors: the standard ones that are open, root, cwd, the program.
    # rbx = next cmsg fd slot, r14 = fd mask.
    a.lea(RBX, Mem(RBP, D_CMSG + 16))
    a.mov_ri(R14, 0)

    def add_fd(reg: int, bit: int) -> None:
        a.store(4, Mem(RBX), reg)
        a.alu_ri(ADD, 64, RBX, 4)
        a.alu_ri(OR, 64, R14, bit)

    for fd, bit in ((0, FD_STDIN), (1, FD_STDOUT), (2, FD_STDERR)):
        closed = Label()
        a.mov_ri(RDI, fd)
        a.mov_ri(RSI, 1)                         # F_GETFD: is it open?
        _syscall(a, SYS_FCNTL)
        a.alu_ri(CMP, 64, RAX, 0)
        a.jcc(CC_L, closed)
        a.mov_ri(RAX, fd)
        add_fd(RAX, bit)
        a.bind(closed)
    for path, bit in ((D_SLASH, FD_ROOT), (D_DOT, FD_CWD)):
        a.lea(RDI, Mem(RBP, path))
        a.mov_ri(RSI, O_PATH_DIR)
        a.mov_ri(RDX, 0)
        _syscall(a, SYS_OPEN)
        a.alu_ri(CMP, 64, RAX, 0)
        a.jcc(CC_L, fail)
        add_fd(RAX, bit)
    no_program = Label()
    a.alu_ri(CMP, 64, R13, 0)
    a.jcc(CC_L, no_program)
    add_fd(R13, FD_PROGRAM)
    a.bind(no_program)
    a.store(4, Mem(RBP, D_HEADER + 28), R14)
    a.lea(RAX, Mem(RBP, D_CMSG))
    a.alu_rr(SUB, 64, RBX, RAX)                  # cmsg_len = 16 + 4 * nfds
    a.store(8, Mem(RBP, D_CMSG), RBX)
    a.alu_ri(ADD, 64, RBX, 7)                    # controllen = CMSG_SPACE: 8-aligned
    a.alu_ri(AND, 64, RBX, -8)
    a.store(8, Mem(RBP, D_MSGHDR + 40), RBX)

    a.mov_ri(RDI, AF_UNIX)
    a.mov_ri(RSI, SOCK_STREAM_CLOEXEC)
    a.mov_ri(RDX, 0)
    _syscall(a, SYS_SOCKET)
    a.alu_ri(CMP, 64, RAX, 0)
    a.jcc(CC_L, fail)
    a.mov_rr(64, R12, RAX)                       # r12 = socket
    a.mov_rr(64, RDI, R12)
    a.lea(RSI, Mem(RBP, D_SOCKADDR))
    a.mov_ri(RDX, 3 + len(socket))               # family + NUL + name
    _syscall(a, SYS_CONNECT)
    a.alu_ri(CMP, 64, RAX, 0)
    a.jcc(CC_L, fail)
    a.mov_rr(64, RDI, R12)
    a.lea(RSI, Mem(RBP, D_MSGHDR))
    a.mov_ri(RDX, 0x4000)                        # MSG_NOSIGNAL
    _syscall(a, SYS_SENDMSG)
    a.alu_ri(CMP, 64, RAX, 0)
    a.jcc(CC_L, fail)

    _forward_signals_until_reply(a)
    a.mov_rr(64, RDI, R12)                       # the reply
    a.lea(RSI, Mem(RBP, D_REPLY))
    a.mov_ri(RDX, REPLY.size)
    _syscall(a, SYS_READ)
    a.alu_ri(CMP, 64, RAX, REPLY.size)
    a.jcc(CC_NE, fail)
    signalled = Label()
    a.movzx(RDI, Mem(RBP, D_REPLY + 4), 4)
    a.alu_ri(CMP, 32, Mem(RBP, D_REPLY), REPLY_EXIT)
    a.jcc(CC_NE, signalled)
    _syscall(a, SYS_EXIT_GROUP)
    a.bind(signalled)                            # die of the same signal
    a.mov_rr(64, R13, RDI)
    a.lea(RSI, Mem(RBP, D_SIGACTION))
    a.mov_ri(RDX, 0)
    a.mov_ri(R10, 8)
    _syscall(a, SYS_RT_SIGACTION)                # back to SIG_DFL
    a.lea(RCX, Mem(R13, -1))
    a.mov_ri(RAX, 1)
    a.shift_cl(SHL, 64, RAX)                       # shl rax, cl: the signal's mask bit
    a.store(8, Mem(RBP, D_SIGSET), RAX)
    a.mov_ri(RDI, 1)                             # SIG_UNBLOCK
    a.lea(RSI, Mem(RBP, D_SIGSET))
    a.mov_ri(RDX, 0)
    a.mov_ri(R10, 8)
    _syscall(a, SYS_RT_SIGPROCMASK)
    _syscall(a, SYS_GETPID)
    a.mov_rr(64, RDI, RAX)
    a.mov_rr(64, RSI, R13)
    _syscall(a, SYS_KILL)
    a.lea(RDI, Mem(R13, 128))                    # not reached unless the signal is
    _syscall(a, SYS_EXIT_GROUP)                  # harmless: the shell's convention

    a.bind(fail)
    a.mov_ri(RDI, 2)
    a.lea(RSI, Mem(RBP, D_MESSAGE))
    a.mov_ri(RDX, len(message))
    _syscall(a, SYS_WRITE)
    a.mov_ri(RDI, EXIT_NO_SERVER)
    _syscall(a, SYS_EXIT_GROUP)
    code = a.finish()
    if CODE_OFFSET + len(code) > DATA_OFFSET:
        raise AssertionError("launcher code overlaps its data")

    data = bytearray(DATA_SIZE)
    struct.pack_into("<H", data, D_SOCKADDR, AF_UNIX)
    data[D_SOCKADDR + 3 : D_SOCKADDR + 3 + len(socket)] = socket
    if D_MESSAGE + len(message) > D_SLASH:
        raise ValueError("socket name too long for the launcher's message")
    data[D_MESSAGE : D_MESSAGE + len(message)] = message
    data[D_SLASH : D_SLASH + 2] = b"/\0"
    data[D_DOT : D_DOT + 2] = b".\0"
    return _elf(code, bytes(data))


def _forward_signals_until_reply(a: Assembler) -> None:
    """Wait for the server's reply, passing on FORWARDED signals meanwhile: they are
    blocked (the program already has the caller's mask) and read from a signalfd.
    r12 = socket; r13 = the signalfd (negative if there is none: poll skips it)."""
    a.mov_ri(RDI, SIG_BLOCK)
    a.lea(RSI, Mem(RBP, D_FORWARD_SET))
    a.mov_ri(RDX, 0)
    a.mov_ri(R10, 8)
    _syscall(a, SYS_RT_SIGPROCMASK)
    a.mov_ri(RDI, -1)
    a.lea(RSI, Mem(RBP, D_FORWARD_SET))
    a.mov_ri(RDX, 8)
    a.mov_ri(R10, SFD_CLOEXEC)
    _syscall(a, SYS_SIGNALFD4)
    a.mov_rr(64, R13, RAX)
    a.store(4, Mem(RBP, D_POLLFDS), R12)
    a.store(4, Mem(RBP, D_POLLFDS + 8), R13)
    wait, no_signal, stop = Label(), Label(), Label()
    a.bind(wait)
    a.lea(RDI, Mem(RBP, D_POLLFDS))
    a.mov_ri(RSI, 2)
    a.mov_ri(RDX, -1)
    _syscall(a, SYS_POLL)
    a.alu_ri(CMP, 64, RAX, 0)
    a.jcc(CC_L, wait)                            # EINTR (resumed after a stop)
    a.movzx(RAX, Mem(RBP, D_POLLFDS + 8 + 6), 2)  # the signalfd's revents
    a.alu_ri(AND, 64, RAX, POLLIN)
    a.jcc(CC_E, no_signal)
    a.mov_rr(64, RDI, R13)
    a.lea(RSI, Mem(RBP, D_SSI))
    a.mov_ri(RDX, SSI_SIZE)
    _syscall(a, SYS_READ)
    a.alu_ri(CMP, 64, RAX, SSI_SIZE)
    a.jcc(CC_NE, wait)
    a.movzx(RAX, Mem(RBP, D_SSI), 4)             # ssi_signo
    a.store(4, Mem(RBP, D_FORWARD + 4), RAX)
    a.mov_rr(64, RDI, R12)
    a.lea(RSI, Mem(RBP, D_FORWARD))
    a.mov_ri(RDX, REPLY.size)
    a.mov_ri(R10, MSG_NOSIGNAL)
    a.mov_ri(R8, 0)
    a.mov_ri(R9, 0)
    _syscall(a, SYS_SENDTO)
    a.movzx(RAX, Mem(RBP, D_SSI), 4)
    for sig in STOPPING:
        a.alu_ri(CMP, 64, RAX, sig)
        a.jcc(CC_E, stop)
    a.jmp(wait)
    a.bind(stop)                                 # stop too, as the shell expects
    _syscall(a, SYS_GETPID)
    a.mov_rr(64, RDI, RAX)
    a.mov_ri(RSI, SIGSTOP)
    _syscall(a, SYS_KILL)
    a.jmp(wait)
    a.bind(no_signal)
    a.movzx(RAX, Mem(RBP, D_POLLFDS + 6), 2)     # the socket's revents: the reply (or
    a.alu_ri(CMP, 64, RAX, 0)                    # the server gone: the read fails)
    a.jcc(CC_E, wait)


def _elf(code: bytes, data: bytes) -> bytes:
    image = bytearray(DATA_OFFSET + len(data))
    image[CODE_OFFSET : CODE_OFFSET + len(code)] = code
    image[DATA_OFFSET:] = data
    # Constant message fields live in the file: header magic/version, iov[0], msghdr.
    header_at = DATA_OFFSET + D_HEADER
    struct.pack_into("<II", image, header_at, MAGIC, VERSION)
    iov_at = DATA_OFFSET + D_IOV
    data_base = BASE + DATA_OFFSET
    struct.pack_into("<QQ", image, iov_at, data_base + D_HEADER, HEADER.size)
    msghdr_at = DATA_OFFSET + D_MSGHDR
    struct.pack_into("<QIIQQQ", image, msghdr_at, 0, 0, 0, data_base + D_IOV, 2,
                     data_base + D_CMSG)
    struct.pack_into("<II", image, DATA_OFFSET + D_CMSG + 8, 1, 1)  # SOL_SOCKET, SCM_RIGHTS
    struct.pack_into("<Q", image, DATA_OFFSET + D_FORWARD_SET,
                     sum(1 << (sig - 1) for sig in FORWARDED))
    for entry in (D_POLLFDS, D_POLLFDS + 8):
        struct.pack_into("<ihh", image, DATA_OFFSET + entry, -1, POLLIN, 0)
    struct.pack_into("<I", image, DATA_OFFSET + D_FORWARD, FORWARD_SIGNAL)
    ehdr = struct.pack("<4sBBBBB7sHHIQQQIHHHHHH", b"\x7fELF", 2, 1, 1, 0, 0, b"\0" * 7,
                       2, 62, 1, BASE + CODE_OFFSET, 64, 0, 0, 64, 56, 1, 0, 0, 0)
    # one loadable segment, read/write/execute: code and the data it fills in
    phdr = struct.pack("<IIQQQQQQ", 1, 7, 0, BASE, BASE, len(image), len(image), 0x1000)
    image[: len(ehdr)] = ehdr
    image[64 : 64 + len(phdr)] = phdr
    return bytes(image)
