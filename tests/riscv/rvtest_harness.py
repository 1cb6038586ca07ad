"""Build riscv64 snippets with the cross toolchain and run them on pemu's TCG engine.

Nothing binary is committed: every test assembles its code at test time into a
temporary directory.  The run loop implements just enough of Linux (write, exit) for
the differential tests against qemu-riscv64.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from pemu.accel.tcg.engine import TCGEngine
from pemu.linux_user.vmem import PROT_EXEC, PROT_READ, PROT_WRITE, GuestVirtualMemory
from pemu.target.riscv.exceptions import ECALL_U, RiscvTrap
from pemu.target.riscv.isa import DEFAULT_ISA, RiscvIsa
from pemu.target.riscv.tcg_target import riscv64_target

CROSS = "riscv64-linux-gnu-"
MARCH = "rv64gc_zba_zbb_zbs_zicsr_zifencei"
LOAD_ADDR = 0x10000
REGION_SIZE = 0x1000000  # code, data, bss and stack: one RWX region
STACK_TOP = LOAD_ADDR + REGION_SIZE - 0x1000
SYS_WRITE = 64
SYS_EXIT = 93
SYS_EXIT_GROUP = 94


def toolchain_or_skip() -> None:
    missing = [t for t in ("as", "ld", "objcopy") if shutil.which(CROSS + t) is None]
    if missing:
        pytest.skip(f"riscv64 cross toolchain missing ({', '.join(CROSS + t for t in missing)})")


def build(source: str, workdir: Path, name: str = "prog", rvc: bool = True) -> tuple[Path, bytes]:
    """Assemble and link ``source`` at LOAD_ADDR; returns (ELF path, flat image)."""
    toolchain_or_skip()
    src = workdir / f"{name}.s"
    obj, elf, flat = (workdir / f"{name}{ext}" for ext in (".o", ".elf", ".bin"))
    header = "" if rvc else ".option norvc\n"
    src.write_text(header + source + "\n")
    march = MARCH if rvc else MARCH.replace("rv64gc", "rv64g")
    _run([CROSS + "as", f"-march={march}", "-mabi=lp64d", "-mno-relax", "-o", str(obj), str(src)])
    # The flat image spans .text to .data (bss is zero-filled by run_image's mapping);
    # the ELF keeps ordinary segments so that qemu-riscv64 can load it too.
    _run([CROSS + "ld", f"-Ttext=0x{LOAD_ADDR:x}", "-z", "max-page-size=4096", "--no-relax",
          "-e", "_start", "-o", str(elf), str(obj)])
    _run([CROSS + "objcopy", "-O", "binary", str(elf), str(flat)])
    return elf, flat.read_bytes()


def assemble_words(source: str, workdir: Path, rvc: bool) -> bytes:
    """The raw .text bytes of ``source`` (no linking: no relocations allowed)."""
    toolchain_or_skip()
    src, obj, flat = workdir / "w.s", workdir / "w.o", workdir / "w.bin"
    src.write_text((".option rvc\n" if rvc else ".option norvc\n") + source + "\n")
    march = MARCH if rvc else MARCH.replace("rv64gc", "rv64g")
    _run([CROSS + "as", f"-march={march}", "-mno-relax", "-o", str(obj), str(src)])
    _run([CROSS + "objcopy", "-O", "binary", "-j", ".text", str(obj), str(flat)])
    return flat.read_bytes()


def _run(cmd: list[str]) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stderr}")


@dataclass
class Outcome:
    cpu: object
    mem: GuestVirtualMemory
    trap: RiscvTrap | None = None  # the trap that stopped the run (None: exited)
    exit_code: int | None = None
    stdout: bytearray = field(default_factory=bytearray)

    def x(self, i: int) -> int:
        return self.cpu.state.x(i)  # type: ignore[attr-defined]

    def f(self, i: int) -> int:
        return self.cpu.state.f(i)  # type: ignore[attr-defined]

    @property
    def pc(self) -> int:
        return self.cpu.state.pc  # type: ignore[attr-defined]


def run_image(image: bytes, *, regs: dict[int, int] | None = None, linux: bool = False,
              max_traps: int = 10_000, max_insns: int = 256, isa: RiscvIsa = DEFAULT_ISA,
              backend: str = "python") -> Outcome:
    """Run a flat image loaded at LOAD_ADDR.

    Without ``linux`` the run stops at the first trap (tests end snippets with ecall).
    With it, write/exit ecalls are serviced and the run ends at exit.  ``isa``: the
    hart's extensions (``-cpu``); ``backend``: the TCG backend that runs it.
    """
    mem = GuestVirtualMemory()
    mem.map_anonymous(LOAD_ADDR, REGION_SIZE, PROT_READ | PROT_WRITE | PROT_EXEC)
    mem.write_initial(LOAD_ADDR, image)
    engine = TCGEngine(mem, riscv64_target(isa), backend=backend, max_insns=max_insns)
    cpu = engine.create_cpu()
    cpu.state.pc = LOAD_ADDR
    cpu.state.set_x(2, STACK_TOP)
    for reg, value in (regs or {}).items():
        cpu.state.set_x(reg, value)
    out = Outcome(cpu, mem)
    for _ in range(max_traps):
        try:
            cpu.run()
        except RiscvTrap as trap:
            if not linux or trap.cause != ECALL_U:
                out.trap = trap
                return out
            if _syscall(cpu, mem, out):
                return out
            cpu.state.pc += 4
    raise AssertionError("guest made too many system calls")


def _syscall(cpu: object, mem: GuestVirtualMemory, out: Outcome) -> bool:
    """Service one ecall; True when the guest exited."""
    st = cpu.state  # type: ignore[attr-defined]
    number = st.x(17)
    if number == SYS_WRITE:
        data = mem.read(st.x(11), st.x(12))
        out.stdout += data
        st.set_x(10, len(data))
        return False
    if number in (SYS_EXIT, SYS_EXIT_GROUP):
        out.exit_code = st.x(10) & 0xFF
        return True
    raise AssertionError(f"unexpected syscall {number}")


def run_asm(source: str, workdir: Path, **kwargs: object) -> Outcome:
    """Assemble a snippet (``_start`` is prepended) and run it until its first trap."""
    _, image = build(".globl _start\n_start:\n" + source, workdir)
    return run_image(image, **kwargs)  # type: ignore[arg-type]


def run_qemu(elf: Path, cpu: str = "rv64,zba=true,zbb=true,zbs=true") -> tuple[int, bytes]:
    qemu = shutil.which("qemu-riscv64")
    if qemu is None:
        pytest.skip("qemu-riscv64 (Debian qemu-user) is not installed")
    proc = subprocess.run([qemu, "-cpu", cpu, str(elf)],
                          capture_output=True, timeout=60, check=False)
    return proc.returncode, proc.stdout


def executable_segment(elf: bytes) -> tuple[int, bytes]:
    """(vaddr, bytes) of an ELF64's executable PT_LOAD segment."""
    phoff, = struct.unpack_from("<Q", elf, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", elf, 0x36)
    for i in range(phnum):
        p_type, p_flags, p_offset, p_vaddr, _, p_filesz = struct.unpack_from(
            "<IIQQQQ", elf, phoff + i * phentsize)
        if p_type == 1 and p_flags & 1:  # PT_LOAD, PF_X
            return p_vaddr, elf[p_offset:p_offset + p_filesz]
    raise AssertionError("no executable segment")
