"""Debugging the x86-64 ``microvm`` under KVM (``-s``, ``-S``, ``-gdb tcp::PORT``).

One GDB thread per vCPU, all-stop.  The machine stops through the monitor adapter
(``MicrovmMonitor``, run state ``debug``, STOP/RESUME on QMP), whose runner parks every
vCPU thread outside KVM_RUN; registers then come from KVM_GET_REGS/SREGS/FPU and the
KERNEL_GS_BASE MSR, memory through the guest's page tables (pemu/accel/kvm/page_walk.py).

Breakpoints and single step use KVM_SET_GUEST_DEBUG:
* ``stepi``: KVM_GUESTDBG_SINGLESTEP on the stepped vCPU while the others stay parked;
  KVM reports KVM_EXIT_DEBUG (#DB) after one instruction.
* ``Z0``/``Z1``: the debug registers DR0-DR3 as execute breakpoints
  (KVM_GUESTDBG_USE_HW_BP), and ``Z2``/``Z4`` as write/access watchpoints, four in all.
  Software breakpoints (int3 with KVM_GUESTDBG_USE_SW_BP) are not used: a KVM that
  emulates ring-0 code, like this host's kvm_pvm, cannot execute int3 at all (see
  ``probe_guest_debug``), while debug registers work on every KVM.
An execute breakpoint faults *before* its instruction, so continuing from one would hit
it again at once; the stub first single-steps every vCPU that sits on one, with the
breakpoints off, and only then lets the machine run.

Layout of the registers (what ``target.xml`` says, and the ``g`` packet's order):
gdb's own ``org.gnu.gdb.i386.core`` and ``.sse`` features (64bit-core.xml,
64bit-sse.xml): rax..r15 0-15, rip 16, eflags 17, cs ss ds es fs gs 18-23, st0-st7
24-31 (80 bits), fctrl..fop 32-39, xmm0-xmm15 40-55, mxcsr 56; then
``org.gnu.gdb.i386.segments`` fs_base 57, gs_base 58; then pemu's system registers
k_gs_base 59, cr0 60, cr2 61, cr3 62, cr4 63, cr8 64, efer 65.
"""

from __future__ import annotations

import ctypes
import mmap
import sys
import threading
from dataclasses import dataclass
from xml.sax.saxutils import escape

from pemu import threads
from pemu.accel.kvm import abi
from pemu.accel.kvm.errors import KVMError
from pemu.gdbstub.target import (
    BP_HARDWARE,
    BP_SOFTWARE,
    SIGINT,
    SIGTRAP,
    WP_ACCESS,
    WP_WRITE,
    DebugTarget,
    StopEvent,
    TargetError,
)
from pemu.monitor.errors import QMPError
from pemu.monitor.machine import DEBUG

MSR_KERNEL_GS_BASE = 0xC000_0102
GPR_NAMES = ["rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp"] + [
    f"r{n}" for n in range(8, 16)]
SEGMENTS = ["cs", "ss", "ds", "es", "fs", "gs"]
FPU_CONTROL = ["fctrl", "fstat", "ftag", "fiseg", "fioff", "foseg", "fooff", "fop"]
SYSTEM_REGS = ["k_gs_base", "cr0", "cr2", "cr3", "cr4", "cr8", "efer"]
RIP_REGNUM = 16
DEBUG_SLOTS = 4
DR7_RW = {BP_SOFTWARE: 0b00, BP_HARDWARE: 0b00, WP_WRITE: 0b01, WP_ACCESS: 0b11}
DR7_LEN = {1: 0b00, 2: 0b01, 4: 0b11, 8: 0b10}
EXC_DB = 1
STOP_WAIT = 10.0


@dataclass(frozen=True)
class Reg:
    name: str
    bits: int
    type: str
    feature: str
    group: str = ""


def register_layout() -> list[Reg]:
    core, sse = "org.gnu.gdb.i386.core", "org.gnu.gdb.i386.sse"
    regs = [Reg(n, 64, "data_ptr" if n in ("rbp", "rsp") else "int64", core)
            for n in GPR_NAMES]
    regs.append(Reg("rip", 64, "code_ptr", core))
    regs.append(Reg("eflags", 32, "i386_eflags", core))
    regs += [Reg(n, 32, "int32", core) for n in SEGMENTS]
    regs += [Reg(f"st{i}", 80, "i387_ext", core) for i in range(8)]
    regs += [Reg(n, 32, "int", core, "float") for n in FPU_CONTROL]
    regs += [Reg(f"xmm{i}", 128, "vec128", sse) for i in range(16)]
    regs.append(Reg("mxcsr", 32, "i386_mxcsr", sse, "vector"))
    regs += [Reg(n, 64, "int", "org.gnu.gdb.i386.segments") for n in ("fs_base", "gs_base")]
    regs += [Reg(n, 64, "int64", "org.pemu.x86.system", "system") for n in SYSTEM_REGS]
    return regs


LAYOUT = register_layout()
REGNUM = {r.name: i for i, r in enumerate(LAYOUT)}

_EFLAGS_FIELDS = [("CF", 0), ("", 1), ("PF", 2), ("AF", 4), ("ZF", 6), ("SF", 7), ("TF", 8),
                  ("IF", 9), ("DF", 10), ("OF", 11), ("NT", 14), ("RF", 16), ("VM", 17),
                  ("AC", 18), ("VIF", 19), ("VIP", 20), ("ID", 21)]
_MXCSR_FIELDS = [("IE", 0), ("DE", 1), ("ZE", 2), ("OE", 3), ("UE", 4), ("PE", 5),
                 ("DAZ", 6), ("IM", 7), ("DM", 8), ("ZM", 9), ("OM", 10), ("UM", 11),
                 ("PM", 12), ("FZ", 15)]


def _flags_xml(type_id: str, fields: list[tuple[str, int]]) -> str:
    body = "".join(f'    <field name="{n}" start="{b}" end="{b}"/>\n' for n, b in fields)
    return f'  <flags id="{type_id}" size="4">\n{body}  </flags>\n'


def _types_for(feature: str) -> str:
    if feature == "org.gnu.gdb.i386.core":
        return _flags_xml("i386_eflags", _EFLAGS_FIELDS)
    if feature == "org.gnu.gdb.i386.sse":
        vectors = [("v4f", "ieee_single", 4), ("v2d", "ieee_double", 2), ("v16i8", "int8", 16),
                   ("v8i16", "int16", 8), ("v4i32", "int32", 4), ("v2i64", "int64", 2)]
        out = "".join(f'  <vector id="{i}" type="{t}" count="{c}"/>\n' for i, t, c in vectors)
        out += '  <union id="vec128">\n'
        for field, vid in (("v4_float", "v4f"), ("v2_double", "v2d"), ("v16_int8", "v16i8"),
                           ("v8_int16", "v8i16"), ("v4_int32", "v4i32"),
                           ("v2_int64", "v2i64"), ("uint128", "uint128")):
            out += f'    <field name="{field}" type="{vid}"/>\n'
        out += "  </union>\n"
        return out + _flags_xml("i386_mxcsr", _MXCSR_FIELDS)
    return ""


FEATURE_FILES = {"org.gnu.gdb.i386.core": "64bit-core.xml",
                 "org.gnu.gdb.i386.sse": "64bit-sse.xml",
                 "org.gnu.gdb.i386.segments": "64bit-segments.xml",
                 "org.pemu.x86.system": "pemu-x86-system.xml"}


def target_xml() -> dict[str, str]:
    """target.xml and the feature files it includes, every register with its regnum."""
    files = {}
    for feature, filename in FEATURE_FILES.items():
        regs = ""
        for num, r in enumerate(LAYOUT):
            if r.feature != feature:
                continue
            group = f' group="{r.group}"' if r.group else ""
            regs += (f'  <reg name="{escape(r.name)}" bitsize="{r.bits}" type="{r.type}" '
                     f'regnum="{num}"{group}/>\n')
        files[filename] = ('<?xml version="1.0"?>\n<!DOCTYPE feature SYSTEM "gdb-target.dtd">\n'
                           f'<feature name="{feature}">\n{_types_for(feature)}{regs}</feature>\n')
    includes = "".join(f'  <xi:include href="{f}"/>\n' for f in FEATURE_FILES.values())
    files["target.xml"] = (
        '<?xml version="1.0"?>\n<!DOCTYPE target SYSTEM "gdb-target.dtd">\n'
        '<target xmlns:xi="http://www.w3.org/2001/XInclude">\n'
        '  <architecture>i386:x86-64</architecture>\n' + includes + '</target>\n')
    return files


# -- x87 tag word ------------------------------------------------------------------------
def full_tag_word(ftwx: int, fsw: int, fpr) -> int:
    """FXSAVE keeps one "not empty" bit per physical x87 register; GDB shows the full
    two-bit tags (0 valid, 1 zero, 2 special, 3 empty), derived from each value."""
    top = (fsw >> 11) & 7
    tags = 0
    for phys in range(8):
        if not ftwx >> phys & 1:
            tag = 3
        else:
            raw = bytes(fpr[(phys - top) & 7][:10])
            mantissa = int.from_bytes(raw[:8], "little")
            exponent = int.from_bytes(raw[8:10], "little") & 0x7FFF
            if exponent == 0x7FFF:
                tag = 2
            elif exponent == 0:
                tag = 1 if mantissa == 0 else 2
            else:
                tag = 0 if mantissa >> 63 else 2
        tags |= tag << (2 * phys)
    return tags


def abridged_tag_word(full: int) -> int:
    return sum(1 << p for p in range(8) if (full >> (2 * p)) & 3 != 3)


# -- register file of one vCPU --------------------------------------------------------------
class VCPURegisters:
    """All of one vCPU's registers in GDB's layout, read and written through KVM."""

    def __init__(self, vcpu) -> None:
        self.vcpu = vcpu
        self.regs = vcpu.get_regs()
        self.sregs = vcpu.get_sregs()
        self.fpu = vcpu.get_fpu()
        self.kgs = vcpu.get_msrs([MSR_KERNEL_GS_BASE]).get(MSR_KERNEL_GS_BASE, 0)
        self._dirty: set[str] = set()

    def get(self, num: int) -> int:
        name = LAYOUT[num].name
        r, s, f = self.regs, self.sregs, self.fpu
        if num <= RIP_REGNUM:
            return getattr(r, name)
        if name == "eflags":
            return r.rflags & 0xFFFF_FFFF
        if name in SEGMENTS:
            return getattr(s, name).selector
        if name.startswith("st"):
            return int.from_bytes(bytes(f.fpr[int(name[2:])][:10]), "little")
        if name.startswith("xmm"):
            return int.from_bytes(bytes(f.xmm[int(name[3:])]), "little")
        return {
            "fctrl": lambda: f.fcw, "fstat": lambda: f.fsw,
            "ftag": lambda: full_tag_word(f.ftwx, f.fsw, f.fpr),
            "fiseg": lambda: 0, "fioff": lambda: f.last_ip & 0xFFFF_FFFF,
            "foseg": lambda: 0, "fooff": lambda: f.last_dp & 0xFFFF_FFFF,
            "fop": lambda: f.last_opcode, "mxcsr": lambda: f.mxcsr,
            "fs_base": lambda: s.fs.base, "gs_base": lambda: s.gs.base,
            "k_gs_base": lambda: self.kgs,
        }.get(name, lambda: getattr(s, name))()

    def set(self, num: int, value: int) -> None:
        name = LAYOUT[num].name
        r, s, f = self.regs, self.sregs, self.fpu
        if num <= RIP_REGNUM:
            setattr(r, name, value)
            self._dirty.add("regs")
        elif name == "eflags":
            r.rflags = (r.rflags & ~0xFFFF_FFFF) | value
            self._dirty.add("regs")
        elif name in SEGMENTS:
            # Only the selector: the hidden descriptor part stays as it is (QEMU's gdb
            # stub reloads it from the GDT; a debugger rarely wants either).
            getattr(s, name).selector = value & 0xFFFF
            self._dirty.add("sregs")
        elif name in ("fs_base", "gs_base"):
            getattr(s, name[:2]).base = value
            self._dirty.add("sregs")
        elif name == "k_gs_base":
            self.kgs = value
            self._dirty.add("msr")
        elif name in SYSTEM_REGS:
            setattr(s, name, value)
            self._dirty.add("sregs")
        else:
            self._set_fpu(name, value, f)
            self._dirty.add("fpu")

    @staticmethod
    def _set_fpu(name: str, value: int, f: abi.KvmFpu) -> None:
        if name.startswith("st"):
            ctypes.memmove(f.fpr[int(name[2:])], value.to_bytes(10, "little"), 10)
        elif name.startswith("xmm"):
            ctypes.memmove(f.xmm[int(name[3:])], value.to_bytes(16, "little"), 16)
        elif name == "fctrl":
            f.fcw = value & 0xFFFF
        elif name == "fstat":
            f.fsw = value & 0xFFFF
        elif name == "ftag":
            f.ftwx = abridged_tag_word(value)
        elif name == "fioff":
            f.last_ip = value
        elif name == "fooff":
            f.last_dp = value
        elif name == "fop":
            f.last_opcode = value & 0x7FF
        elif name == "mxcsr":
            f.mxcsr = value
        # fiseg/foseg do not exist in the 64-bit FXSAVE image: writes are dropped

    def flush(self) -> None:
        v = self.vcpu
        if "regs" in self._dirty:
            v.set_regs(self.regs)
        if "sregs" in self._dirty:
            v.set_sregs(self.sregs)
        if "fpu" in self._dirty:
            v.set_fpu(self.fpu)
        if "msr" in self._dirty:
            v.set_msrs({MSR_KERNEL_GS_BASE: self.kgs})
        self._dirty.clear()

    # -- bytes in GDB's order -------------------------------------------------------------
    def read_bytes(self, num: int) -> bytes:
        return (self.get(num) & ((1 << LAYOUT[num].bits) - 1)).to_bytes(
            LAYOUT[num].bits // 8, "little")

    def write_bytes(self, num: int, data: bytes) -> None:
        size = LAYOUT[num].bits // 8
        if len(data) != size:
            raise TargetError(f"register {LAYOUT[num].name} takes {size} bytes", 22)
        self.set(num, int.from_bytes(data, "little"))


# -- what this host's KVM can do ------------------------------------------------------------
@dataclass(frozen=True)
class GuestDebugSupport:
    single_step: bool
    hw_breakpoints: bool
    sw_breakpoints: bool
    hw_watchpoints: bool
    reason: str  # what is missing, for users and for test skips


_support: GuestDebugSupport | None = None


def probe_guest_debug(path: str = "/dev/kvm") -> GuestDebugSupport:
    """Ask KVM with tiny long-mode guests what KVM_SET_GUEST_DEBUG does here: single
    step, a DR0 execute breakpoint, a DR0 write watchpoint, and int3 under USE_SW_BP.
    Cached for the process."""
    global _support
    if _support is None:
        _support = _run_probe(path)
    return _support


def _run_probe(path: str) -> GuestDebugSupport:
    from pemu.accel.kvm.system import KVMSystem
    from pemu.accel.kvm.vm import KVMVM
    from pemu.target.x86 import cpu_modes

    try:
        system = KVMSystem(path)
    except KVMError as e:
        return GuestDebugSupport(False, False, False, False, str(e))
    code_at = 0x1000
    watch_code_at, watched = 0x1800, 0x3000
    # inc %rax; inc %rax; int3; hlt
    code = bytes.fromhex("48ffc0" "48ffc0" "cc" "f4")
    # mov %rax, 0x3000; hlt
    watch_code = bytes.fromhex("48890425" "00300000" "f4")
    ram = mmap.mmap(-1, 0x200000)
    results = {}
    vm = vcpus = None
    try:
        if not system.check_extension(abi.KVM_CAP_SET_GUEST_DEBUG):
            return GuestDebugSupport(False, False, False, False,
                                     "KVM lacks KVM_CAP_SET_GUEST_DEBUG")
        vm = KVMVM(system)
        vm.add_memory(0, len(ram), ctypes.addressof(ctypes.c_char.from_buffer(ram)))

        def write(addr: int, data: bytes) -> None:
            ram[addr:addr + len(data)] = data

        write(code_at, code)
        write(watch_code_at, watch_code)
        write(0x500, cpu_modes.flat_gdt())
        pml4 = cpu_modes.identity_page_tables(0x100000, write)
        vcpus = []
        # name: (flags, DR0-DR7, where the code starts, where the stop must be)
        write_watch_dr7 = 0x401 | (0b01 << 16) | (0b10 << 18)  # DR0: write, 8 bytes
        tests = {
            "single step": (abi.KVM_GUESTDBG_SINGLESTEP, [], code_at, code_at + 3),
            "hardware breakpoint": (abi.KVM_GUESTDBG_USE_HW_BP,
                                    [code_at + 3, 0, 0, 0, 0, 0, 0, 0x401], code_at,
                                    code_at + 3),
            "hardware watchpoint": (abi.KVM_GUESTDBG_USE_HW_BP,
                                    [watched, 0, 0, 0, 0, 0, 0, write_watch_dr7],
                                    watch_code_at, watch_code_at + 8),
            "int3 software breakpoint": (abi.KVM_GUESTDBG_USE_SW_BP, [], code_at,
                                         code_at + 6),
        }
        for i, (what, (flags, dregs, start, want_pc)) in enumerate(tests.items()):
            vcpu = vm.create_vcpu(i)
            vcpus.append(vcpu)
            vcpu.set_cpuid(system.supported_cpuid())
            sregs = vcpu.get_sregs()
            cpu_modes.set_long_mode(sregs, 0x500, pml4)
            vcpu.set_sregs(sregs)
            regs = vcpu.get_regs()
            regs.rip, regs.rflags, regs.rsp = start, 2, 0x8000
            vcpu.set_regs(regs)
            vcpu.read_phys = lambda a, n: bytes(ram[a:a + n])
            vcpu.set_guest_debug(abi.KVM_GUESTDBG_ENABLE | flags, dregs)
            reason = vcpu.run_once()
            if reason == abi.KVM_EXIT_DEBUG:
                pc = vcpu.get_regs().rip
                # int3 stops with RIP at the int3 or just after it, depending on KVM
                ok = pc in (want_pc, want_pc - 1) if what.startswith("int3") else pc == want_pc
                results[what] = None if ok else f"stopped at 0x{pc:x}"
            elif reason == abi.KVM_EXIT_HLT:
                results[what] = "the guest ran on to its hlt without a debug exit"
            else:
                results[what] = str(vcpu.failure(vcpu.describe_exit(reason)))
    except KVMError as e:
        return GuestDebugSupport(False, False, False, False, str(e))
    finally:
        for vcpu in vcpus or []:
            vcpu.close()
        if vm is not None:
            vm.close()
        system.close()
        try:
            ram.close()
        except BufferError:
            pass
    missing = "; ".join(f"{what}: {why}" for what, why in results.items() if why)
    return GuestDebugSupport(results["single step"] is None,
                             results["hardware breakpoint"] is None,
                             results["int3 software breakpoint"] is None,
                             results["hardware watchpoint"] is None,
                             missing or "everything works")


# -- the target ---------------------------------------------------------------------------------
@dataclass
class _Point:
    kind: int
    addr: int
    length: int


class X86KVMTarget(DebugTarget):
    arch = "x86_64"
    pc_regnum = RIP_REGNUM
    pc_size = 8

    def __init__(self, monitor_machine) -> None:
        super().__init__()
        self.vm = monitor_machine  # MicrovmMonitor
        self.board = monitor_machine.board
        self.runner = monitor_machine.runner
        self.vcpus = self.board.vcpus
        self._xml = target_xml()
        self.points: list[_Point] = []
        self._lock = threading.Lock()
        self._stopped = threading.Event()  # a debug exit or Ctrl-C arrived
        self._hit: tuple[int, int] | None = None  # (vCPU index, DR6) of the first exit
        self._interrupted = False
        self._worker: threading.Thread | None = None
        self.last_thread = 1
        self.board.debug_handler = self._debug_exit

    # -- description -------------------------------------------------------------------------
    def target_xml(self) -> dict[str, str]:
        return self._xml

    def threads(self) -> list[int]:
        return [v.index + 1 for v in self.vcpus]

    def _vcpu(self, thread: int):
        if not 1 <= thread <= len(self.vcpus):
            raise TargetError(f"no thread {thread}", 3)
        return self.vcpus[thread - 1]

    def thread_description(self, thread: int) -> str:
        vcpu = self._vcpu(thread)
        try:
            with self.vm.quiesced():
                halted = vcpu.get_mp_state() == abi.KVM_MP_STATE_HALTED
        except (KVMError, QMPError):
            halted = False
        return f"CPU#{vcpu.index} [{'halted' if halted else 'running'}]"

    # -- registers ------------------------------------------------------------------------------
    def _registers(self, thread: int) -> VCPURegisters:
        try:
            return VCPURegisters(self._vcpu(thread))
        except KVMError as e:
            raise TargetError(str(e), 5) from None

    def read_registers(self, thread: int) -> bytes:
        with self.vm.quiesced():
            regs = self._registers(thread)
            return b"".join(regs.read_bytes(i) for i in range(len(LAYOUT)))

    def write_registers(self, thread: int, data: bytes) -> None:
        with self.vm.quiesced():
            regs = self._registers(thread)
            pos = 0
            for i, r in enumerate(LAYOUT):
                size = r.bits // 8
                if pos + size > len(data):
                    break  # GDB may send a prefix of the registers
                regs.write_bytes(i, data[pos:pos + size])
                pos += size
            self._flush(regs)

    def read_register(self, thread: int, regno: int) -> bytes:
        if not 0 <= regno < len(LAYOUT):
            raise TargetError(f"no register {regno}", 22)
        with self.vm.quiesced():
            return self._registers(thread).read_bytes(regno)

    def write_register(self, thread: int, regno: int, value: bytes) -> None:
        if not 0 <= regno < len(LAYOUT):
            raise TargetError(f"no register {regno}", 22)
        with self.vm.quiesced():
            regs = self._registers(thread)
            regs.write_bytes(regno, value)
            self._flush(regs)

    @staticmethod
    def _flush(regs: VCPURegisters) -> None:
        try:
            regs.flush()
        except KVMError as e:
            raise TargetError(f"KVM refused the new register values: {e}", 22) from None

    # -- memory ------------------------------------------------------------------------------------
    def read_memory(self, thread: int, addr: int, length: int) -> bytes:
        try:
            return self.vm.read_memory(addr, length, physical=False, cpu_index=thread - 1)
        except QMPError as e:
            raise TargetError(str(e), 14) from None

    def write_memory(self, thread: int, addr: int, data: bytes) -> None:
        try:
            self.vm.write_memory(addr, data, physical=False, cpu_index=thread - 1)
        except QMPError as e:
            raise TargetError(str(e), 14) from None

    # -- breakpoints and watchpoints: DR0-DR3 ------------------------------------------------------
    def insert_point(self, kind: int, addr: int, length: int) -> bool:
        if kind not in DR7_RW:
            return False  # read-only watchpoints do not exist on x86
        if kind in (WP_WRITE, WP_ACCESS):
            if not probe_guest_debug().hw_watchpoints:
                return False  # GDB then watches in software, by single-stepping
            if length not in DR7_LEN or addr % length:
                raise TargetError(f"watchpoint of {length} bytes at 0x{addr:x}: x86 "
                                  "debug registers watch 1, 2, 4 or 8 aligned bytes", 22)
        else:
            length = 1
        with self._lock:
            if any(p.kind == kind and p.addr == addr for p in self.points):
                return True
            if len(self.points) >= DEBUG_SLOTS:
                raise TargetError("all 4 x86 debug registers are in use", 28)
            self.points.append(_Point(kind, addr, length))
        return True

    def remove_point(self, kind: int, addr: int, length: int) -> bool:
        if kind not in DR7_RW:
            return False
        with self._lock:
            self.points = [p for p in self.points if not (p.kind == kind and p.addr == addr)]
        return True

    def remove_all_points(self) -> None:
        with self._lock:
            self.points = []

    def _debugregs(self) -> list[int]:
        regs = [0] * 8
        dr7 = 0
        for slot, p in enumerate(self.points):
            regs[slot] = p.addr
            dr7 |= 1 << (2 * slot)  # local enable
            dr7 |= DR7_RW[p.kind] << (16 + 4 * slot)
            if p.kind in (WP_WRITE, WP_ACCESS):
                dr7 |= DR7_LEN[p.length] << (18 + 4 * slot)
        regs[7] = dr7 | (1 << 10) if dr7 else 0  # bit 10 reads as 1
        return regs

    def _arm(self, step_index: int | None) -> None:
        """Load the guest-debug state into every vCPU (all parked)."""
        with self._lock:
            regs = self._debugregs()
            have_points = bool(self.points)
        for vcpu in self.vcpus:
            if vcpu.index == step_index:
                vcpu.set_guest_debug(abi.KVM_GUESTDBG_ENABLE | abi.KVM_GUESTDBG_SINGLESTEP)
            elif have_points:
                vcpu.set_guest_debug(abi.KVM_GUESTDBG_ENABLE | abi.KVM_GUESTDBG_USE_HW_BP,
                                     regs)
            else:
                vcpu.set_guest_debug(0)

    # -- stops ----------------------------------------------------------------------------------
    def _debug_exit(self, vcpu, info: abi.KvmDebugExitArch) -> None:
        """On the vCPU's thread: KVM_EXIT_DEBUG.  Stop everything (without waiting: this
        thread must return to park) and wake the worker."""
        with self._lock:
            if self._hit is None:
                self._hit = (vcpu.index, info.dr6)
        self.runner.request_pause()
        self._stopped.set()

    def _wait_stop(self) -> bool:
        """Until a debug exit, Ctrl-C or the end of the machine; False for the latter."""
        while not self._stopped.wait(0.2):
            if self.board.done.is_set():
                return False
        return not self.board.done.is_set()

    def _prepare(self) -> None:
        with self._lock:
            self._hit = None
            self._interrupted = False
            self._stopped.clear()

    def _step_one(self, index: int) -> bool:
        """Single-step vCPU ``index`` with the others parked; True once it has."""
        self._prepare()
        self._arm(index)
        self.runner.resume(only=index)
        ok = self._wait_stop()
        self.runner.pause()
        if ok and self._hit is None:
            return False  # Ctrl-C before the step completed
        return ok

    def resume(self, step_thread: int | None) -> None:
        if self._worker is not None and self._worker.is_alive():
            self._worker.join(STOP_WAIT)
        self._worker = threads.start_daemon(self._run, step_thread, name="pemu-gdb-run")

    def _run(self, step_thread: int | None) -> None:
        try:
            if step_thread is not None:
                index = self._vcpu(step_thread).index
                if not self._step_one(index):
                    self._report_end_or_interrupt(step_thread)
                    return
                self._arm(None)
                self._report(step_thread, SIGTRAP)
                return
            # continue: first step every vCPU off an execute breakpoint it sits on
            with self._lock:
                exec_points = {p.addr for p in self.points if p.kind in (BP_SOFTWARE,
                                                                          BP_HARDWARE)}
            for vcpu in self.vcpus:
                if exec_points and vcpu.get_regs().rip in exec_points:
                    if not self._step_one(vcpu.index):
                        self._report_end_or_interrupt(vcpu.index + 1)
                        return
            self._prepare()
            self._arm(None)
            self.vm.cont()
            ok = self._wait_stop()
            if not ok:
                self._report_end_or_interrupt(self.last_thread)
                return
            self.vm.stop(DEBUG)
            hit = self._hit
            if hit is None:
                self._report(self.last_thread, SIGINT)
                return
            self._report_hit(*hit)
        except (KVMError, QMPError, TargetError) as e:
            print(f"pemu: gdbstub: cannot resume the guest: {e}", file=sys.stderr)
            self.vm.stop(DEBUG)
            self._report(self.last_thread, SIGINT)

    def _report_hit(self, index: int, dr6: int) -> None:
        thread = index + 1
        with self._lock:
            points = list(self.points)
        for slot, p in enumerate(points):
            if dr6 >> slot & 1 and p.kind in (WP_WRITE, WP_ACCESS):
                self.last_thread = thread
                self.report(StopEvent(SIGTRAP, thread, watch_kind=p.kind, watch_addr=p.addr))
                return
        self._report(thread, SIGTRAP)

    def _report_end_or_interrupt(self, thread: int) -> None:
        if self.board.done.is_set():
            self.report(StopEvent(exited=self.board.exit_status or 0))
            return
        self.vm.stop(DEBUG)
        self._report(thread, SIGINT)

    def _report(self, thread: int, signal: int) -> None:
        self.last_thread = thread
        self.report(StopEvent(signal, thread))

    def interrupt(self) -> None:
        with self._lock:
            self._interrupted = True
        self.runner.request_pause()
        self._stopped.set()
        if self._worker is None or not self._worker.is_alive():
            self.vm.stop(DEBUG)
            self._report(self.last_thread, SIGINT)

    # -- attach, detach, kill --------------------------------------------------------------------
    def attached(self) -> None:
        """GDB connected: the machine stops for it, as in QEMU."""
        self.vm.stop(DEBUG)

    def detach(self) -> None:
        self.remove_all_points()
        self.interrupt_worker()
        try:
            with self.vm.quiesced():
                for vcpu in self.vcpus:
                    vcpu.set_guest_debug(0)
        except KVMError:
            pass
        self.vm.cont()

    def interrupt_worker(self) -> None:
        if self._worker is not None and self._worker.is_alive():
            self._stopped.set()
            self._worker.join(STOP_WAIT)

    def kill(self) -> None:
        self.vm.quit()


def start_x86_gdbstub(monitor_machine, spec: str, wait: bool = False):
    """``-gdb SPEC`` / ``-s`` for the microvm; ``wait`` blocks until GDB attaches."""
    from pemu.gdbstub.server import serve

    target = X86KVMTarget(monitor_machine)
    return target, serve(target, spec, wait)


__all__ = ["X86KVMTarget", "start_x86_gdbstub", "probe_guest_debug", "target_xml",
           "LAYOUT", "REGNUM"]
