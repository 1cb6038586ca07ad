"""The resident binfmt server: one Python process with pemu imported, forking an emulator
for each foreign program that the launcher (binfmt_launcher.py) hands over.

A fork of a warm process costs a few milliseconds, where starting Python and importing
pemu costs half a second; a ``./configure`` or a ``dpkg`` run starts thousands of
processes.  The forked child becomes the program the user started:

- its standard descriptors, root directory, working directory and umask are the
  launcher's (passed with SCM_RIGHTS, so a chroot needs neither Python nor pemu);
- its credentials are the launcher's (SO_PEERCRED; supplementary groups from /proc,
  checked against the launcher's pidfd, peer_process.py);
  a server that is not root serves only its own user, in its own root;
- its environment and arguments are the launcher's, laid out as binfmt_misc gave them
  (with ``P``, the original argv[0] follows the program path);
- its blocked and ignored signals are the launcher's (which had its caller's).

The server answers each launcher with the child's end (exit code or signal), sends the
child the signals the launcher passes on (^C, ^Z, fg, kill: the launcher is what the
terminal and the shell see), and kills the child if the launcher goes away first
(killed by SIGKILL).  One thread, one selector: the listening socket, each launcher's
connection and each child's pidfd.
"""

from __future__ import annotations

import contextlib
import errno
import gc
import os
import selectors
import signal
import socket
import struct
import sys
from dataclasses import dataclass, field

from pemu.accel.tcg import tb_cache

from . import inherited_fds, peer_process, warm_start
from .binfmt_launcher import (
    FD_CWD,
    FD_PROGRAM,
    FD_ROOT,
    FD_STDERR,
    FD_STDIN,
    FD_STDOUT,
    FORWARD_SIGNAL,
    HEADER,
    MAGIC,
    MAX_FDS,
    REPLY,
    REPLY_EXIT,
    REPLY_SIGNAL,
    VERSION,
)
from .host_auxv import AT_EXECFD, AT_FLAGS

# main: with it, all of pemu's user mode, imported before any fork
from .main import ENV_OPTIONS, main

MAX_STRINGS = 8 << 20   # argv + envp; Linux caps them near 2 MiB (ARG_MAX 32 pages each)
REQUEST_TIMEOUT = 10.0  # seconds a launcher may take to send its request
EXIT_SETUP_FAILED = 126
# signals the server handles in Python (serve's SIGTERM, Python's own SIGINT); the
# program's dispositions come from its launcher's request instead
_SERVER_HANDLED = frozenset({signal.SIGTERM, signal.SIGINT})


class RequestError(Exception):
    pass


@dataclass
class Request:
    argv: list[bytes]
    envp: list[bytes]
    at_flags: int
    umask: int
    fds: dict[int, int]  # FD_* bit -> descriptor received
    uid: int
    gid: int
    pid: int
    sigmask: int = 0  # the launcher's blocked signals (bit n-1: signal n)
    sigign: int = 0   # and its ignored ones
    # the launcher's other descriptors (inherited_fds.py): its number -> ours
    inherited: dict[int, int] = field(default_factory=dict)
    # its supplementary groups (read by the server through its pidfd where the child
    # takes another user's credentials, peer_process.py)
    groups: list[int] = field(default_factory=list)


def _read_exact(conn: socket.socket, n: int) -> bytes:
    chunks, got = [], 0
    while got < n:
        chunk = conn.recv(min(n - got, 1 << 20))
        if not chunk:
            raise RequestError("launcher closed the connection mid-request")
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def receive_request(conn: socket.socket) -> Request:
    """Read and check one launcher's request; the descriptors it carries are owned by
    the returned Request (closed by the caller)."""
    conn.settimeout(REQUEST_TIMEOUT)
    fd_space = socket.CMSG_SPACE(MAX_FDS * 4)
    data, ancillary, flags, _ = conn.recvmsg(HEADER.size, fd_space, socket.MSG_CMSG_CLOEXEC)
    received: list[int] = []
    for level, kind, payload in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            received += struct.unpack(f"<{len(payload) // 4}i", payload[: len(payload) // 4 * 4])
    try:
        if flags & socket.MSG_CTRUNC:
            raise RequestError("too many descriptors")
        if len(data) < HEADER.size:
            data += _read_exact(conn, HEADER.size - len(data))
        (magic, version, argc, envc, at_flags, umask, fd_mask, size, sigmask,
         sigign) = HEADER.unpack(data)
        if magic != MAGIC or version != VERSION:
            raise RequestError(f"not a pemu launcher request (magic {magic:#x}, "
                               f"version {version})")
        if size > MAX_STRINGS or argc < 2:
            raise RequestError(f"bad request: argc {argc}, {size} bytes of strings")
        bits = [b for b in (FD_STDIN, FD_STDOUT, FD_STDERR, FD_ROOT, FD_CWD, FD_PROGRAM)
                if fd_mask & b]
        if len(bits) != len(received) or not fd_mask & FD_ROOT or not fd_mask & FD_CWD:
            raise RequestError("descriptors do not match the request")
        strings = _read_exact(conn, size).split(b"\0")
        if len(strings) < argc + envc:
            raise RequestError("fewer strings than argc + envc")
        uid_pid = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED,
                                  struct.calcsize("3i"))
        pid, uid, gid = struct.unpack("3i", uid_pid)
    except (RequestError, OSError, struct.error):
        for fd in received:
            os.close(fd)
        raise
    conn.settimeout(None)
    return Request(strings[:argc], strings[argc : argc + envc], at_flags, umask & 0o777,
                   dict(zip(bits, received, strict=True)), uid, gid, pid, sigmask, sigign)


def _same_file(fd: int, path: str) -> bool:
    a, b = os.fstat(fd), os.stat(path)
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def take_descriptors(req: Request) -> None:
    """In the forked child, first: the launcher's descriptors at their numbers (its
    stdin, stdout, stderr and the others it inherited), and no other descriptor of the
    server's that the program would inherit."""
    wanted: dict[int, int | None] = {
        target: req.fds.get(bit) for bit, target in ((FD_STDIN, 0), (FD_STDOUT, 1),
                                                      (FD_STDERR, 2))}
    wanted.update(req.inherited)
    keep = [req.fds[bit] for bit in (FD_ROOT, FD_CWD, FD_PROGRAM) if bit in req.fds]
    now, refused = inherited_fds.place(wanted, keep)
    req.fds = {bit: now[fd] for bit, fd in req.fds.items() if fd in now}
    req.inherited = {}
    for number in refused:
        os.write(2, f"pemu-binfmt: descriptor {number} of the caller is one of pemu's "
                    "own here; the program does not get it\n".encode())


def become_program(req: Request) -> list[str]:
    """In the forked child, after take_descriptors: take the launcher's place.  Returns
    pemu's argv."""
    root, cwd = req.fds[FD_ROOT], req.fds[FD_CWD]
    if not _same_file(root, "/"):
        os.fchdir(root)
        os.chroot(".")
    os.fchdir(cwd)
    os.umask(req.umask)
    if req.uid != os.getuid() or req.gid != os.getgid():
        os.setgroups(req.groups)
        os.setgid(req.gid)
        os.setuid(req.uid)
    os.environ.clear()
    for item in req.envp:
        key, sep, value = item.partition(b"=")
        if sep and key:
            os.environb[key] = value
    # the launcher's signal state, as an execve would have passed it on (the hidden
    # options reexec uses too: this process's own state is the server's)
    ignored = ",".join(str(sig) for sig in range(1, 65) if req.sigign >> (sig - 1) & 1)
    signal_options = ["-pemu-sigmask", f"{req.sigmask:x}", "-pemu-sigign", ignored]
    # argv[0] is the launcher; argv[1] the program path as the kernel was given it.
    return [*signal_options, "--", *(os.fsdecode(a) for a in req.argv[1:])]


_OPTION_VARIABLES = frozenset(f"{prefix}_{name}".encode() for prefix in ("PEMU", "QEMU")
                              for name in ENV_OPTIONS.values())


def _sets_options(envp: list[bytes]) -> bool:
    """The environment sets one of pemu's options (main.ENV_OPTIONS)."""
    return any(item.partition(b"=")[0] in _OPTION_VARIABLES for item in envp)


def _run_child(req: Request, arch: str = "riscv64") -> int:
    take_descriptors(req)  # before the cache's files take numbers the program's need
    # the translation cache is opened here, in the server's root and environment (the
    # program's root and environment come next), unless the prepared engine holds all
    # of it; a program run as another user gets none, since the cache holds native code
    # that every user of it runs
    if req.uid == os.getuid() and req.gid == os.getgid():
        tb_cache.pin(database=warm_start.needs_database(_sets_options(req.envp)))
    else:
        tb_cache.disable()
    argv = become_program(req)
    auxv = {AT_FLAGS: req.at_flags}
    if FD_PROGRAM in req.fds:
        auxv[AT_EXECFD] = req.fds[FD_PROGRAM]
    return main(argv, auxv=auxv, exec_natively=True, arch=arch)


class BinfmtServer:
    def __init__(self, name: bytes, log=sys.stderr, arch: str = "riscv64") -> None:
        self.name = name
        self.arch = arch  # the guest architecture its children run
        self.log = log
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        try:
            self.listener.bind(b"\0" + name)
        except OSError as e:
            raise OSError(e.errno, f"cannot listen on @{name.decode()}: {e.strerror}") from None
        self.listener.listen(128)
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.listener, selectors.EVENT_READ, ("accept", None))
        self.children: dict[int, tuple[socket.socket, int]] = {}  # pid -> (conn, pidfd)
        self.may_switch_user = os.geteuid() == 0
        self.stopping = False
        # the engine the children start with (warm_start.py)
        self.prepared: warm_start.Prepared | None = None

    def prepare(self) -> None:
        """Build the children's engine, with every cached block installed."""
        try:
            self.prepared = warm_start.prepare(self.arch)
        except (OSError, RuntimeError) as e:  # the children build their own, as before
            self._say(f"no prepared engine: {e}")
        if self.prepared is not None:
            self._say(f"{len(self.prepared.engine.preinstalled)} cached blocks installed")

    def _say(self, text: str) -> None:
        if self.log is not None:
            self.log.write(f"pemu-binfmt: {text}\n")
            self.log.flush()

    def serve_forever(self) -> None:
        while not self.stopping:
            for key, _ in self.selector.select(timeout=1.0):
                what, arg = key.data
                if what == "accept":
                    self._accept()
                elif what == "child":
                    self._reap(arg)
                else:
                    self._launcher_gone(arg)

    def stop(self) -> None:
        self.stopping = True

    def close(self) -> None:
        for pid, (conn, pidfd) in list(self.children.items()):
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            conn.close()
            os.close(pidfd)
        self.children.clear()
        self.selector.close()
        self.listener.close()

    def _accept(self) -> None:
        try:
            conn, _ = self.listener.accept()
        except OSError:
            return
        try:
            req = receive_request(conn)
        except (RequestError, OSError, struct.error) as e:
            self._say(f"refused a request: {e}")
            conn.close()
            return
        pidfd = inherited_fds.peer_pidfd(conn)
        try:
            if pidfd is None:  # a kernel before 6.5: as good as the pid (no worse)
                pidfd = os.pidfd_open(req.pid)
            req.inherited = inherited_fds.borrow(req.pid, req.fds.get(FD_PROGRAM), pidfd)
        except OSError as e:  # the program gets stdin, stdout and stderr only
            self._say(f"cannot take the other descriptors of launcher {req.pid}: {e}")
        try:
            if (req.uid, req.gid) != (os.getuid(), os.getgid()):
                if not self.may_switch_user:
                    self._refuse(conn, req, "this server runs as another user and cannot "
                                 "switch to yours")
                    return
                try:
                    req.groups = peer_process.supplementary_groups(req.pid, pidfd)
                except OSError as e:  # the launcher is gone (or no pidfd at all)
                    self._refuse(conn, req, f"cannot read the caller's groups: {e}")
                    return
            self._start(conn, req)
        finally:
            if pidfd is not None:
                os.close(pidfd)
            for fd in [*req.fds.values(), *req.inherited.values()]:
                os.close(fd)

    def _refuse(self, conn: socket.socket, req: Request, why: str) -> None:
        if FD_STDERR in req.fds:
            os.write(req.fds[FD_STDERR], f"pemu-binfmt: {why}\n".encode())
        conn.sendall(REPLY.pack(REPLY_EXIT, EXIT_SETUP_FAILED))
        conn.close()

    def _start(self, conn: socket.socket, req: Request) -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        # everything alive now (the prepared engine's blocks above all) out of the
        # collector's reach: a collection in the child would write to every object,
        # copying the pages the child shares with this process
        gc.freeze()
        # a signal the launcher passes on at once must not meet the server's own
        # handlers in the child (SIGTERM's would run server.stop() there, and the
        # program would never hear of it): held off across the fork, delivered once
        # the child has the defaults its program starts with
        held = signal.pthread_sigmask(signal.SIG_BLOCK, _SERVER_HANDLED)
        pid = os.fork()
        if pid != 0:
            signal.pthread_sigmask(signal.SIG_SETMASK, held)
        else:  # the emulated program
            code = EXIT_SETUP_FAILED
            try:
                for sig in _SERVER_HANDLED:
                    signal.signal(sig, signal.SIG_DFL)
                signal.pthread_sigmask(signal.SIG_SETMASK, held)
                # a process group of its own, whose parent (the server) is in another
                # group of the same session: never an orphaned group, where the kernel
                # would discard the ^Z (SIGTSTP) the launcher passes on (POSIX) - as
                # the server's own group is once the shell that started it is gone, or
                # when it runs as a session leader (setsid, a service)
                os.setpgid(0, 0)
                self.selector.close()
                self.listener.close()
                conn.close()
                for other, pidfd in self.children.values():
                    other.close()
                    os.close(pidfd)
                code = _run_child(req, self.arch)
            except SystemExit as e:
                code = e.code if isinstance(e.code, int) else 1
            except BaseException as e:  # noqa: BLE001 - the child must never return
                try:
                    os.write(2, f"pemu-binfmt: {req.argv[1:2]}: {e!r}\n".encode())
                except OSError:
                    pass
            finally:
                try:
                    sys.stdout.flush()
                    sys.stderr.flush()
                finally:
                    os._exit(code & 0xFF)
        pidfd = os.pidfd_open(pid)
        self.children[pid] = (conn, pidfd)
        self.selector.register(pidfd, selectors.EVENT_READ, ("child", pid))
        self.selector.register(conn, selectors.EVENT_READ, ("conn", pid))

    def _reap(self, pid: int) -> None:
        conn, pidfd = self.children.pop(pid)
        self.selector.unregister(pidfd)
        if conn.fileno() in self.selector.get_map():
            self.selector.unregister(conn)
        os.close(pidfd)
        _, status = os.waitpid(pid, 0)
        if self.prepared is not None:
            # what the program wrote to the cache as it ended is installed for the next
            # ones, before its launcher (and whoever waits for it: a shell loop, make)
            # hears of the end; a few microseconds when the file did not change
            self.prepared.refresh()
        if os.WIFSIGNALED(status):
            reply = REPLY.pack(REPLY_SIGNAL, os.WTERMSIG(status))
        else:
            reply = REPLY.pack(REPLY_EXIT, os.waitstatus_to_exitcode(status) & 0xFF)
        try:
            conn.sendall(reply)
        except OSError:
            pass  # the launcher is gone already
        conn.close()

    def _launcher_gone(self, pid: int) -> None:
        """The launcher sent a signal to pass on (^C, ^Z, fg, kill), or closed its end
        (it was killed outright): then the program goes with it."""
        conn, _ = self.children[pid]
        try:
            message = conn.recv(REPLY.size, socket.MSG_DONTWAIT)
        except BlockingIOError:
            return
        except OSError as e:
            if e.errno not in (errno.ECONNRESET, errno.EPIPE):
                raise
            message = b""
        if message:
            if len(message) == REPLY.size:
                kind, sig = REPLY.unpack(message)
                if kind == FORWARD_SIGNAL and 0 < sig < signal.NSIG:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, sig)
            return  # anything else: stray bytes; the launcher is still there
        self.selector.unregister(conn)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def serve(name: bytes, arch: str = "riscv64") -> int:
    """pemu-binfmt --serve: run until SIGTERM/SIGINT."""
    server = BinfmtServer(name, arch=arch)
    signal.signal(signal.SIGTERM, lambda *_: server.stop())
    server.prepare()
    server._say(f"serving on @{name.decode()} (pid {os.getpid()})")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
    return 0
