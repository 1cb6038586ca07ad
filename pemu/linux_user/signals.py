"""Guest signals: dispositions, per-thread masks and queues, and the riscv64 frame.

Layout facts (arch/riscv/include/uapi/asm/{ucontext,sigcontext}.h, kernel/signal.c):
  rt_sigframe = siginfo (128 bytes) followed by a ucontext;
  ucontext    = uc_flags @0, uc_link @8, uc_stack {sp @16, flags @24, size @32},
                uc_sigmask @40 (8 bytes, padded to 128), uc_mcontext @176 (16-aligned);
  sigcontext  = pc, x1..x31 (32 words), then __riscv_d_ext_state f[32] and fcsr,
                inside a union sized like the Q state (528 bytes), whose last 8 bytes
                are the first __riscv_ctx_hdr (magic, size) of the extension area;
  V (Linux 6.5+): that header says RISCV_V_MAGIC, a __riscv_v_ext_state (vstart, vl,
                vtype, vcsr, vlenb, datap) follows the sigcontext, then the registers
                (datap points there), then an END header (0, 0).
The kernel returns from handlers through the vDSO; pemu maps a one-page trampoline
(``li a7, 139; ecall``) and points ra at it.
"""

from __future__ import annotations

import collections
import os
import resource
import signal
import struct
import sys
import threading
from dataclasses import dataclass

from pemu.target.riscv import cpu_state as rv
from pemu.target.riscv.vector_state import decode_vtype

NSIG = 64
SIG_DFL = 0
SIG_IGN = 1
SA_SIGINFO = 0x4
SA_ONSTACK = 0x08000000
SA_RESTART = 0x10000000
SA_NODEFER = 0x40000000
SA_RESETHAND = 0x80000000
SS_ONSTACK = 1
SS_DISABLE = 2

SIGHUP, SIGINT, SIGQUIT, SIGILL, SIGTRAP, SIGABRT, SIGBUS, SIGFPE = 1, 2, 3, 4, 5, 6, 7, 8
SIGKILL, SIGUSR1, SIGSEGV, SIGUSR2, SIGPIPE, SIGALRM, SIGTERM = 9, 10, 11, 12, 13, 14, 15
SIGCHLD, SIGCONT, SIGSTOP, SIGTSTP, SIGTTIN, SIGTTOU, SIGURG = 17, 18, 19, 20, 21, 22, 23
SIGXCPU, SIGXFSZ, SIGWINCH, SIGSYS = 24, 25, 28, 31

DEFAULT_IGNORED = {SIGCHLD, SIGCONT, SIGURG, SIGWINCH}
DEFAULT_STOP = {SIGSTOP, SIGTSTP, SIGTTIN, SIGTTOU}
DEFAULT_CORE = {SIGQUIT, SIGILL, SIGTRAP, SIGABRT, SIGFPE, SIGSEGV, SIGBUS, SIGSYS,
                SIGXCPU, SIGXFSZ}
SYNCHRONOUS = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGTRAP}
UNBLOCKABLE = (1 << (SIGKILL - 1)) | (1 << (SIGSTOP - 1))

# si_code values
SI_USER = 0
SI_TIMER = -2
SI_TKILL = -6
SEGV_MAPERR, SEGV_ACCERR = 1, 2
BUS_ADRALN = 1
ILL_ILLOPC = 1
TRAP_BRKPT = 1
CLD_EXITED = 1

SIGINFO_SIZE = 128
UC_OFFSET = SIGINFO_SIZE
UC_STACK = 16
UC_SIGMASK = 40
UC_MCONTEXT = 176
MC_FP = 32 * 8
MC_FCSR = MC_FP + 32 * 8
UCONTEXT_SIZE = UC_MCONTEXT + 256 + 528
FRAME_SIZE = SIGINFO_SIZE + UCONTEXT_SIZE
UC_EXT_HDR = UCONTEXT_SIZE - 8  # the first extension header, inside the FP union
RISCV_V_MAGIC = 0x53465457
V_STATE_SIZE = 48  # __riscv_v_ext_state: five words and datap
NR_RT_SIGRETURN = 139
# li a7, 139 ; ecall
TRAMPOLINE_CODE = struct.pack("<II", 0x08B00893, 0x00000073)


def bit(sig: int) -> int:
    return 1 << (sig - 1)


@dataclass
class SigAction:
    handler: int = SIG_DFL
    flags: int = 0
    mask: int = 0
    restorer: int = 0  # sa_restorer, on architectures whose sigaction has one (arm64)


@dataclass
class SigInfo:
    signo: int
    code: int = SI_USER
    addr: int = 0  # fault address (SIGSEGV/SIGBUS/SIGILL/SIGFPE/SIGTRAP)
    pid: int = 0
    uid: int = 0
    status: int = 0  # SIGCHLD
    timer_id: int = 0  # SI_TIMER: which timer, how often it expired meanwhile, its value
    overrun: int = 0
    value: int = 0

    def pack(self) -> bytes:
        head = struct.pack("<iii4x", self.signo, 0, self.code)
        if self.code == SI_TIMER:
            body = struct.pack("<iiQ", self.timer_id, self.overrun, self.value)
        elif self.signo in SYNCHRONOUS and self.code > 0:
            body = struct.pack("<Q", self.addr)
        elif self.signo == SIGCHLD:
            body = struct.pack("<iIi", self.pid, self.uid, self.status)
        else:  # _rt: sender, and the value of sigqueue (rt_sigqueueinfo)
            body = struct.pack("<iIQ", self.pid, self.uid, self.value & (1 << 64) - 1)
        return (head + body).ljust(SIGINFO_SIZE, b"\0")


class SignalState:
    """Process-wide dispositions (shared by all threads)."""

    def __init__(self) -> None:
        self.actions = [SigAction() for _ in range(NSIG + 1)]
        self.lock = threading.Lock()
        # guest descriptor -> syscalls.signalfd.SignalFd: told of each queued signal
        self.signalfds: dict[int, object] = {}


class ThreadSignals:
    """A thread's blocked mask, pending queue and alternate stack."""

    def __init__(self) -> None:
        self.mask = 0
        self.pending: collections.deque[SigInfo] = collections.deque()
        self.saved_mask: int | None = None  # mask to restore after rt_sigsuspend
        self.altstack = (0, SS_DISABLE, 0)  # sp, flags, size

    def first_deliverable(self) -> SigInfo | None:
        for info in self.pending:
            if not self.mask & bit(info.signo) or info.signo in (SIGKILL, SIGSTOP):
                return info
        return None

    def on_altstack(self, sp: int) -> bool:
        ss_sp, flags, size = self.altstack
        return not flags & SS_DISABLE and ss_sp < sp <= ss_sp + size


def queue_signal(thread: object, info: SigInfo) -> None:
    """Make a signal pending on a thread and kick it out of translated code."""
    pending = thread.signals.pending
    # Standard signals do not queue twice (real-time ones do).
    if info.signo < 32 and any(p.signo == info.signo for p in pending):
        return
    pending.append(info)
    for sfd in list(thread.process.signals.signalfds.values()):
        if sfd.mask & bit(info.signo):
            sfd.arm()
    thread.wake.set()
    thread.cpu.request_exit()


def queue_process_signal(process: object, info: SigInfo) -> None:
    """A signal for the whole process goes to a thread that does not block it."""
    threads = list(process.threads.values())
    if not threads:
        return
    main = process.threads.get(process.pid, threads[0])
    target = main
    if main.signals.mask & bit(info.signo):
        target = next((t for t in threads if not t.signals.mask & bit(info.signo)), main)
    queue_signal(target, info)


def die_by_signal(process: object, sig: int) -> None:
    """Default action 'terminate': end the emulator with the same signal status."""
    debugger = getattr(process, "debugger", None)
    if debugger is not None:
        debugger.process_killed(sig)
    if sig in DEFAULT_CORE:
        name = signal.strsignal(sig) or f"signal {sig}"
        sys.stderr.write(f"pemu: uncaught target signal {sig} ({name}) - core dumped\n")
    sys.stderr.flush()
    if process.strace is not None:
        process.strace.flush()
    try:
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        signal.signal(sig, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, [sig])
    except (OSError, ValueError):
        pass
    os.kill(os.getpid(), sig)
    os._exit(128 + sig)


def inherited_host_state() -> tuple[int, list[int]]:
    """The blocked mask and ignored signals this process was started with, which its
    guest inherits (as across execve).  SIGPIPE and SIGXFSZ are left out: Python
    ignores them itself at startup, so what the caller had is lost (reexec passes
    them in hidden options)."""
    mask = 0
    for sig in signal.pthread_sigmask(signal.SIG_BLOCK, []):
        mask |= bit(int(sig))
    ignored = [sig for sig in range(1, signal.NSIG)
               if sig not in (SIGPIPE, SIGXFSZ, SIGKILL, SIGSTOP)
               and signal.getsignal(sig) is signal.SIG_IGN]
    return mask & ~UNBLOCKABLE, ignored


# -- host signal forwarding ------------------------------------------------------------
_process_for_host_signals = None


def _on_host_signal(signum: int, _frame: object) -> None:
    process = _process_for_host_signals
    if process is not None:
        queue_process_signal(process, SigInfo(signum, SI_USER))


def host_dispositions_follow_guest(process: object) -> None:
    """At start: the host's dispositions are the guest's (ignored or default), and no
    signal is blocked on the host, whatever pemu's own parent left (the binfmt
    server's, a background shell's).  Signals 32 and 33 are glibc's own: left alone."""
    for sig in (*range(1, 32), *range(signal.SIGRTMIN, NSIG + 1)):
        if sig not in (SIGKILL, SIGSTOP):
            sync_host_disposition(sig, process.signals.actions[sig])
    # the guest's mask is pemu's (ThreadSignals.mask); one left blocked on the host
    # would never reach the guest once it unblocks it
    signal.pthread_sigmask(signal.SIG_SETMASK, set())


def init_host_signals(process: object) -> None:
    """Python's own handlers (SIGINT, SIGPIPE ignored) must not leak into the guest."""
    global _process_for_host_signals
    _process_for_host_signals = process
    for sig in (signal.SIGINT, signal.SIGPIPE, signal.SIGXFSZ):
        if signal.getsignal(sig) is not signal.SIG_IGN or sig == signal.SIGPIPE:
            signal.signal(sig, signal.SIG_DFL)


def _can_mirror(sig: int) -> bool:
    if sig in SYNCHRONOUS or sig in (SIGKILL, SIGSTOP) or sig > signal.NSIG - 1:
        return False
    # Python only lets the main thread change host handlers
    return threading.current_thread() is threading.main_thread()


_forwarded: set[int] = set()  # host signals whose handler is _on_host_signal


def forward_host_signal(sig: int) -> None:
    """Queue a host signal for the guest instead of the host's action (signalfd: a
    blocked signal from another process must wait, pending, for the guest to read it)."""
    if sig in _forwarded or not _can_mirror(sig):
        return
    try:
        signal.signal(sig, _on_host_signal)
        signal.siginterrupt(sig, True)
        _forwarded.add(sig)
    except (OSError, ValueError):
        pass


def reset_caught_to_default(process: object) -> None:
    """Every caught signal back to SIG_DFL, ignored ones stay ignored (the kernel's
    flush_signal_handlers: execve, and clone3's CLONE_CLEAR_SIGHAND)."""
    actions = process.signals.actions
    for sig in range(1, NSIG + 1):
        if actions[sig].handler not in (SIG_IGN, SIG_DFL):
            actions[sig] = SigAction()
            sync_host_disposition(sig, actions[sig])
        elif actions[sig].handler == SIG_DFL:
            actions[sig] = SigAction()  # SA_* flags and the mask go as well


def keep_blocked_pending(process: object, newly_blocked: int) -> None:
    """A blocked signal is never discarded (it may get a handler before it is
    unblocked), but the host ignores SIGCHLD, SIGURG, SIGWINCH and SIGCONT by default:
    catch those from the moment the guest blocks them.  (Signals that terminate by
    default are left to the host, which ends pemu as the guest's default would: a
    Python handler runs only between bytecodes.)"""
    for sig in DEFAULT_IGNORED:
        if newly_blocked & bit(sig) and process.signals.actions[sig].handler == SIG_DFL:
            forward_host_signal(sig)


def sync_host_disposition(sig: int, action: SigAction) -> None:
    """Mirror a guest disposition on the host so host-raised signals reach the guest."""
    if action.handler not in (SIG_IGN, SIG_DFL):
        forward_host_signal(sig)
        return
    if not _can_mirror(sig):
        return
    try:
        signal.signal(sig, signal.SIG_IGN if action.handler == SIG_IGN else signal.SIG_DFL)
        _forwarded.discard(sig)
    except (OSError, ValueError):
        pass


# -- frames --------------------------------------------------------------------------
def setup_frame(thread: object, info: SigInfo, action: SigAction, old_mask: int,
                trampoline: int) -> None:
    """Push an rt_sigframe and point the thread at the handler (kernel: setup_rt_frame)."""
    state = thread.state
    mem = thread.process.mem
    sigs = thread.signals
    sp = state.x(2)
    if action.flags & SA_ONSTACK and not sigs.altstack[1] & SS_DISABLE \
            and not sigs.on_altstack(sp):
        sp = sigs.altstack[0] + sigs.altstack[2]
    vector = _vector_context(state)
    frame = (sp - FRAME_SIZE - len(vector)) & ~0xF
    regs = [state.pc] + [state.x(i) for i in range(1, 32)]
    fregs = [state.f(i) for i in range(32)]
    fcsr = (state.slots[rv.FRM] << 5) | state.slots[rv.FFLAGS]
    ss_sp, ss_flags, ss_size = sigs.altstack
    if sigs.on_altstack(state.x(2)):
        ss_flags |= SS_ONSTACK
    uc = bytearray(UCONTEXT_SIZE)
    struct.pack_into("<QQ", uc, 0, 0, 0)
    struct.pack_into("<QiIQ", uc, UC_STACK, ss_sp, ss_flags, 0, ss_size)
    struct.pack_into("<Q", uc, UC_SIGMASK, old_mask)
    struct.pack_into("<32Q", uc, UC_MCONTEXT, *regs)
    struct.pack_into("<32QI", uc, UC_MCONTEXT + MC_FP, *fregs, fcsr)
    if vector:
        data_addr = frame + SIGINFO_SIZE + UCONTEXT_SIZE + V_STATE_SIZE
        struct.pack_into("<II", uc, UC_EXT_HDR, RISCV_V_MAGIC, len(vector))
        struct.pack_into("<Q", vector, V_STATE_SIZE - 8, data_addr)
    mem.write(frame, info.pack() + bytes(uc) + vector)  # GuestFault: a bad stack
    state.set_x(1, trampoline)
    state.set_x(2, frame)
    state.set_x(10, info.signo)
    state.set_x(11, frame)
    state.set_x(12, frame + UC_OFFSET)
    state.pc = action.handler


def _vector_context(state: rv.RiscvCPUState) -> bytearray:
    """What follows the ucontext with V: the __riscv_v_ext_state (datap left 0 for the
    caller), the registers, the END header; empty without V."""
    vector = state.vector
    if not vector.vlenb:
        return bytearray()
    head = struct.pack("<6Q", vector.vstart, vector.vl, vector.vtype.raw,
                       vector.vxrm << 1 | vector.vxsat, vector.vlenb, 0)
    return bytearray(head + vector.register_bytes() + bytes(8))


def _restore_vector_context(state: rv.RiscvCPUState, mem: object, uc: bytes,
                            uc_addr: int) -> None:
    vector = state.vector
    magic, _size = struct.unpack_from("<II", uc, UC_EXT_HDR)
    if not vector.vlenb or magic != RISCV_V_MAGIC:
        return
    head_addr = uc_addr + UCONTEXT_SIZE
    vstart, vl, vtype, vcsr, _vlenb, datap = struct.unpack(
        "<6Q", mem.read(head_addr, V_STATE_SIZE))  # type: ignore[attr-defined]
    vector.set_register_bytes(mem.read(datap, 32 * vector.vlenb))  # type: ignore[attr-defined]
    vector.vtype = decode_vtype(vtype, vector.elen)
    vector.vstart, vector.vl = vstart, vl
    vector.vxrm, vector.vxsat = (vcsr >> 1) & 3, vcsr & 1


def restore_frame(thread: object) -> None:
    """rt_sigreturn: reload registers, mask and altstack from the frame at sp."""
    state = thread.state
    mem = thread.process.mem
    uc_addr = state.x(2) + UC_OFFSET
    uc = mem.read(uc_addr, UCONTEXT_SIZE)
    regs = struct.unpack_from("<32Q", uc, UC_MCONTEXT)
    fp = struct.unpack_from("<32QI", uc, UC_MCONTEXT + MC_FP)
    state.pc = regs[0]
    for i in range(1, 32):
        state.set_x(i, regs[i])
    for i in range(32):
        state.set_f(i, fp[i])
    state.slots[rv.FFLAGS] = fp[32] & 0x1F
    state.slots[rv.FRM] = (fp[32] >> 5) & 0x7
    _restore_vector_context(state, mem, uc, uc_addr)
    (mask,) = struct.unpack_from("<Q", uc, UC_SIGMASK)
    thread.signals.mask = mask & ~UNBLOCKABLE
    ss_sp, ss_flags, _pad, ss_size = struct.unpack_from("<QiIQ", uc, UC_STACK)
    if not thread.signals.on_altstack(state.x(2)):
        thread.signals.altstack = (ss_sp, ss_flags & SS_DISABLE, ss_size)
