"""Random RV64GC instruction sequences on both TCG backends, and on qemu-riscv64.

tests/native/guest_gen.py generates the programs: integer, M, Zba/Zbb/Zbc/Zbs, Zbkb/Zbkx, RVC,
loads and stores of every width (misaligned, across the data page's edge, into the
unmapped page below it), LR/SC and AMOs, forward branches and jumps, F/D arithmetic
and conversions under every rounding mode, and fflags/frm/fcsr accesses, from
starting registers full of edge cases.  Each program ends in ebreak or an exit
ecall, or earlier in a trap.

``test_native_matches_python`` runs each program on a python-backend engine and a
native-backend engine from the same state and compares every x and f register, the
pc, fflags, frm, the LR reservation, the data page and how the run stopped.
``test_python_matches_qemu`` wraps a smaller number of programs that cannot fault
in an ELF that loads the starting state and dumps the final one to stdout, and
compares pemu's python backend with qemu-riscv64 on it.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, given, settings

from pemu.accel.tcg.engine import TCGEngine
from pemu.linux_user.arch_riscv64 import _TRAP_SIGNALS
from pemu.linux_user.vmem import PROT_EXEC, PROT_READ, PROT_WRITE, GuestFault, GuestVirtualMemory
from pemu.target.riscv import cpu_state as rv
from pemu.target.riscv.exceptions import RiscvTrap
from pemu.target.riscv.isa import parse_cpu
from pemu.target.riscv.tcg_target import riscv64_target
from tests.native.guest_gen import (
    BASE_OFFSET,
    BASE_REG,
    DUMP_OFFSET,
    GUEST_CPU,
    PAGE,
    GuestProgram,
    Insn,
    programs,
)
from tests.native.native_harness import needs_native
from tests.riscv.rvtest_harness import build, run_image, run_qemu

GUEST_ISA = parse_cpu(GUEST_CPU)
CODE_BASE = 0x10000
DATA_BASE = 0x20000  # the pages either side stay unmapped (code: 0x10000..0x12000)
# Hypothesis' own shrinking of a program this size takes many minutes (every step runs
# two engines), so it is off: a failure is cut down by minimize() instead, which only
# drops instruction groups and zeroes starting values.
SETTINGS = dict(deadline=None, phases=[Phase.explicit, Phase.reuse, Phase.generate],
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.function_scoped_fixture])


@dataclass
class Result:
    """Everything a program can change, and how its run stopped."""

    stop: tuple
    pc: int
    x: list[int]
    f: list[int]
    fflags: int
    frm: int
    reservation: int
    data: bytes

    def fields(self) -> list[tuple[str, object]]:
        """(name, value) in the order a mismatch report names the first difference."""
        out: list[tuple[str, object]] = [("stop", self.stop), ("pc", self.pc)]
        out += [(f"x{i} ({rv.ABI_NAMES[i]})", v) for i, v in enumerate(self.x) if i]
        out += [(f"f{i}", v) for i, v in enumerate(self.f)]
        out += [("fflags", self.fflags), ("frm", self.frm), ("reservation", self.reservation)]
        out += [(f"data[0x{DATA_BASE + i:x}]", self.data[i:i + 8])
                for i in range(0, len(self.data), 8)]
        return out


class GuestBench:
    """One engine with its code and data pages, reused from program to program.

    (An engine per example would be simpler, but native engines keep their code
    buffer's memfd open, so hundreds of them run out of descriptors.)
    """

    def __init__(self, backend: str) -> None:
        self.mem = GuestVirtualMemory(size=1 << 24)
        self.mem.map_anonymous(CODE_BASE, 2 * PAGE, PROT_READ | PROT_EXEC)
        self.mem.map_anonymous(DATA_BASE, PAGE, PROT_READ | PROT_WRITE)
        self.engine = TCGEngine(self.mem, riscv64_target(GUEST_ISA), backend=backend)

    def run(self, prog: GuestProgram) -> Result:
        code = bytes(prog.code_offset) + prog.code()
        assert len(code) <= 2 * PAGE
        self.mem.write_initial(CODE_BASE, code.ljust(2 * PAGE, b"\0"))
        self.engine.flush()  # no block of an earlier program may survive
        self.mem.write_initial(DATA_BASE, prog.data())
        cpu = self.engine.create_cpu()
        state = cpu.state
        for i, value in enumerate(prog.x):
            state.set_x(i, value)
        state.set_x(BASE_REG, DATA_BASE + BASE_OFFSET)
        for i, value in enumerate(prog.f):
            state.set_f(i, value)
        state.slots[rv.FFLAGS] = prog.fcsr & 31
        state.slots[rv.FRM] = prog.fcsr >> 5
        state.pc = CODE_BASE + prog.code_offset
        translated = self.engine.stats["translated"]
        stop: tuple
        try:
            cpu.run()
            stop = ("returned",)
        except RiscvTrap as trap:
            stop = ("trap", trap.cause, trap.tval)
        except GuestFault as fault:
            stop = ("fault", fault.addr, fault.access, fault.mapped)
        except Exception as error:  # an emulator bug: reported with the program below
            stop = ("internal error", type(error).__name__, str(error))
        assert self.engine.stats["translated"] > translated, "no code was translated"
        return Result(stop, state.pc, [state.x(i) for i in range(32)],
                      [state.f(i) for i in range(32)], state.slots[rv.FFLAGS],
                      state.slots[rv.FRM], state.slots[rv.RES_ADDR],
                      self.mem.read(DATA_BASE, PAGE))


def _show(value: object) -> str:
    if isinstance(value, int):
        return f"0x{value:x}"
    if isinstance(value, bytes):
        return value.hex(" ")
    return repr(value)


def mismatch_report(prog: GuestProgram, names: tuple[str, str], a: Result, b: Result) -> str:
    """Empty when the results agree, else the differences (first one first) and the code."""
    # (a run that stopped differently may have no state at all: then only the stop differs)
    diffs = [f"{name}: {names[0]} {_show(va)}, {names[1]} {_show(vb)}"
             for (name, va), (_, vb) in zip(a.fields(), b.fields(), strict=False) if va != vb]
    if not diffs:
        return ""
    return (f"first difference: {diffs[0]}\nall ({len(diffs)}):\n  " + "\n  ".join(diffs[:40])
            + f"\nprogram ({BASE_REG=} = 0x{DATA_BASE + BASE_OFFSET:x}):\n"
            + prog.describe(CODE_BASE + prog.code_offset))


def minimize(prog: GuestProgram, fails: Callable[[GuestProgram], bool]) -> GuestProgram:
    """A smaller program that still ``fails``: groups dropped one at a time (jump targets
    follow, as they are counted in groups), then starting values set to zero."""
    i = len(prog.groups) - 1
    while i >= 0 and len(prog.groups) > 1:
        candidate = replace(prog, groups=prog.groups[:i] + prog.groups[i + 1:])
        if fails(candidate):
            prog = candidate
        i = min(i - 1, len(prog.groups) - 1)
    for field in ("x", "f"):
        for i in range(32):
            values = list(getattr(prog, field))
            if values[i]:
                values[i] = 0
                candidate = replace(prog, **{field: values})
                if fails(candidate):
                    prog = candidate
    for field in ("fcsr", "data_seed", "code_offset"):
        candidate = replace(prog, **{field: 0})
        if getattr(prog, field) and fails(candidate):
            prog = candidate
    return prog


# -- python backend vs native backend --------------------------------------------------------

@pytest.fixture(scope="module")
def benches() -> tuple[GuestBench, GuestBench]:
    return GuestBench("python"), GuestBench("native")


@needs_native
@settings(max_examples=300, **SETTINGS)
@given(prog=programs())
def test_native_matches_python(benches: tuple[GuestBench, GuestBench],
                               prog: GuestProgram) -> None:
    python, native = benches
    assert native.engine.backend_name == "native"

    def report(p: GuestProgram) -> str:
        expected, got = python.run(p), native.run(p)
        if expected.stop[0] == "internal error":
            return f"python backend: {expected.stop}\n{p.describe(CODE_BASE + p.code_offset)}"
        return mismatch_report(p, ("python", "native"), expected, got)

    fail_if_any(prog, report)


def fail_if_any(prog: GuestProgram, report: Callable[[GuestProgram], str]) -> None:
    """Fail with the report of the smallest program found that still differs."""
    first = report(prog)
    if first:
        small = minimize(prog, lambda p: bool(report(p)))
        pytest.fail(report(small) or first, pytrace=False)


def test_mismatch_report_names_the_register_and_the_code() -> None:
    """The report the differential tests rely on: first difference and a listing."""
    prog = GuestProgram([[Insn(0x00B50533)]], [Insn(0x00100073)], [0] * 32, [0] * 32, 0, 0)
    a = Result(("trap", 3, CODE_BASE + 4), CODE_BASE + 4, [0] * 32, [0] * 32, 0, 0, 0,
               bytes(16))
    b = Result(a.stop, a.pc, [0] * 10 + [5] + [0] * 21, [0] * 32, 0, 0, 0, bytes(16))
    assert mismatch_report(prog, ("python", "native"), a, a) == ""
    report = mismatch_report(prog, ("python", "native"), a, b)
    assert report.startswith("first difference: x10 (a0): python 0x0, native 0x5")
    assert "add a0, a0, a1" in report and "ebreak" in report


# -- python backend vs qemu-riscv64 ------------------------------------------------------------

DUMP_X = BASE_OFFSET + DUMP_OFFSET  # offsets in the dumped data page
DUMP_F = DUMP_X + 0x100
DUMP_FCSR = DUMP_F + 0x100


def oracle_source(prog: GuestProgram) -> str:
    """An ELF program: load the starting state, run the body, dump the data page (which
    then holds every register and fcsr) to stdout and exit 0."""
    seeds = [*prog.x, *prog.f, prog.fcsr]
    lines = [".globl _start", ".text", "_start:", "la s1, seeds",
             "ld t0, 512(s1)", "fscsr t0"]
    lines += [f"fld f{i}, {256 + 8 * i}(s1)" for i in range(32)]
    lines += [f"ld x{i}, {8 * i}(s1)" for i in range(1, 32) if i != BASE_REG]
    lines += [f"la s1, data + {BASE_OFFSET}", "body:"]
    lines += [".byte " + ", ".join(str(b) for b in prog.body())]
    lines += [f"sd x{i}, {DUMP_OFFSET + 8 * i}(s1)" for i in range(1, 32)]
    lines += [f"fsd f{i}, {DUMP_OFFSET + 0x100 + 8 * i}(s1)" for i in range(32)]
    lines += ["frcsr t0", f"sd t0, {DUMP_OFFSET + 0x200}(s1)",
              "li a7, 64", "li a0, 1", f"addi a1, s1, -{BASE_OFFSET}", f"li a2, {PAGE}", "ecall",
              "li a7, 93", "li a0, 0", "ecall",
              ".data", ".balign 4096", "data:"]
    data = prog.data()
    lines += [".quad " + ", ".join(f"0x{v:x}" for v in struct.unpack_from("<8Q", data, i))
              for i in range(0, PAGE, 64)]
    lines += ["seeds:", ".quad " + ", ".join(f"0x{v:x}" for v in seeds)]
    return "\n".join(lines)


def dumped_result(status: int, stdout: bytes) -> Result:
    """A Result from the oracle program's exit status and stdout (status < 0: killed by
    that signal, and then there is no state to compare)."""
    if status != 0 or len(stdout) != PAGE:
        return Result(("status", status, len(stdout)), 0, [], [], 0, 0, 0, b"")
    x = list(struct.unpack_from("<32Q", stdout, DUMP_X))
    f = list(struct.unpack_from("<32Q", stdout, DUMP_F))
    fcsr = struct.unpack_from("<Q", stdout, DUMP_FCSR)[0]
    data = stdout[:DUMP_X] + bytes(DUMP_FCSR + 8 - DUMP_X) + stdout[DUMP_FCSR + 8:]
    return Result(("status", 0, PAGE), 0, x, f, fcsr & 31, fcsr >> 5, 0, data)


def run_pemu_oracle_image(image: bytes) -> tuple[int, bytes]:
    """The oracle program on pemu's python backend, as (exit status, stdout)."""
    try:
        out = run_image(image, linux=True, isa=GUEST_ISA)
    except GuestFault:
        return -11, b""  # SIGSEGV
    if out.trap is not None:  # what pemu's Linux user mode turns the trap into
        return -_TRAP_SIGNALS.get(out.trap.cause, (11,))[0], bytes(out.stdout)
    return out.exit_code or 0, bytes(out.stdout)


@settings(max_examples=40, **SETTINGS)
@given(prog=programs(qemu_oracle=True, max_groups=20))
def test_python_matches_qemu(tmp_path_factory: pytest.TempPathFactory,
                             prog: GuestProgram) -> None:
    workdir: Path = tmp_path_factory.mktemp("oracle")

    def report(p: GuestProgram) -> str:
        elf, image = build(oracle_source(p), workdir)
        expected = dumped_result(*run_qemu(elf, GUEST_CPU))
        got = dumped_result(*run_pemu_oracle_image(image))
        report = mismatch_report(p, ("qemu", "pemu"), expected, got)
        return report and report + "\n(the oracle ELF runs a register dump instead of the " \
            "terminator)"

    fail_if_any(prog, report)
