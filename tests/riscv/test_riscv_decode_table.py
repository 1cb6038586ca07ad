"""The RISC-V decode tables (riscv_decode.py) against GNU binutils and qemu-riscv64.

* Every pattern of both tables is reached: words made from its own bits decode to it;
  the translating call runs the pattern (and fields) the decision tree finds.
* The 32-bit patterns name what objdump names: random words of each pattern, through
  objdump, give the pattern's mnemonic (the pattern names are the mnemonics), and each
  pattern binutils 2.40 knows is seen so at least once.
* Random 32-bit words in the opcode spaces of the instructions that do not jump are
  legal or illegal on pemu exactly as on qemu-riscv64: one static program runs each
  word once with every register pointing into a scratch buffer and records whether it
  raised SIGILL; its output must be the same on qemu-riscv64 and on pemu (both TCG
  backends).
"""

from __future__ import annotations

import os
import random
import re
import shutil
import subprocess
import sys
import types
from pathlib import Path

import pytest
from rvtest_harness import build

from pemu.target.decode import Pattern, build_decoder, parse_table
from pemu.target.riscv.riscv_decode import RV_DECODE, RVC_DECODE
from pemu.target.riscv.translate import DECODE_16, DECODE_32

ROOT = Path(__file__).resolve().parents[2]
MARCH_MAX = ("rv64gcv_zba_zbb_zbc_zbkb_zbkc_zbkx_zbs_zicsr_zifencei_zfh_zknd_zkne_zknh_zksed"
             "_zksh_zawrs_zicbom_zicboz_zicbop_svinval_h")
# patterns of extensions binutils 2.40 does not know (Zicond, Zfa, Zimop, Zacas, the
# vector crypto ones)
UNKNOWN_TO_BINUTILS = {"CZERO_EQZ", "CZERO_NEZ", "FLI", "FMINM", "FMAXM", "FROUND",
                       "FROUNDNX", "FLEQ", "FLTQ", "MOP_R_N", "MOP_RR_N", "AMOCAS_W",
                       "AMOCAS_D", "AMOCAS_Q", "OP_VE"}
# a later pattern of an overlap group that an earlier one takes whole (PACKW's rs2 = x0
# case is ZEXT_H when the hart lacks Zbkb: the handler of PACKW refuses it)
SHADOWED = {"ZEXT_H"}
_FMT = "sdhq"
_INT = {0: "w", 1: "wu", 2: "l", 3: "lu"}
_LINE = re.compile(r"\s*[0-9a-f]+:\s+([0-9a-f]{8})\s+(\S+)")


def _words_of(pattern: Pattern, rng: random.Random, n: int, width: int = 32) -> list[int]:
    """The pattern with its free bits 0 (fence's canonical form), and n random ones."""
    free = ~pattern.mask & ((1 << width) - 1)
    return [pattern.bits] + [pattern.bits | (rng.getrandbits(width) & free) for _ in range(n)]


@pytest.mark.parametrize("decoder", [DECODE_32, DECODE_16], ids=["32-bit", "RVC"])
def test_every_pattern_is_reached(decoder) -> None:
    rng = random.Random(5)
    unreached = []
    for pattern in decoder.patterns:
        words = _words_of(pattern, rng, 64, 32 if decoder is DECODE_32 else 16)
        assert all(pattern in decoder.candidates(w) for w in words), pattern.name
        firsts = {decoder.decode(w)[0].name for w in words}
        if pattern.name not in firsts and pattern.name not in SHADOWED:
            unreached.append(f"{pattern.name} (line {pattern.line}): taken by {firsts}")
    assert not unreached, "\n".join(unreached)


@pytest.mark.parametrize(("table", "width"), [(RV_DECODE, 32), (RVC_DECODE, 16)],
                         ids=["32-bit", "RVC"])
def test_translating_calls_run_the_pattern_decode_finds(table: str, width: int) -> None:
    """decoder(ctx, insn) finds candidates through its memo of key bits and runs
    generated field extraction: the same pattern and fields as the tree and
    Pattern.values (handlers that record, and accept everything)."""
    seen: list[tuple[str, dict]] = []

    def recording(name: str):
        return lambda ctx, a: seen.append((name, a.fields()))
    names = {p.name for p in parse_table(table, width)}
    recorder = types.SimpleNamespace(**{f"trans_{name}": recording(name) for name in names})
    decoder = build_decoder(table, recorder, width=width)
    rng = random.Random(3)
    words = [rng.getrandbits(width) | 3 for _ in range(20_000)]
    if width == 16:
        words = [w for w in range(1 << 16) if w & 3 != 3]
    for word in words:
        seen.clear()
        taken = decoder(None, word)
        first = decoder.decode(word)
        assert taken == (first is not None), hex(word)
        if first is not None:
            assert seen == [(first[0].name, first[0].values(word))], hex(word)


def _mnemonic(pattern: Pattern, word: int) -> str:
    """What objdump -M no-aliases calls ``word`` if ``pattern`` is what it is."""
    a = pattern.values(word)
    name = pattern.name.lower().replace("_", ".")
    if pattern.name == "FCVT_F_F":
        return f"fcvt.{_FMT[a['fmt']]}.{_FMT[a['src']]}"
    if pattern.name == "FCVT_TO_INT":
        return f"fcvt.{_INT.get(a['kind'], '?')}.{_FMT[a['fmt']]}"
    if pattern.name == "FCVT_FROM_INT":
        return f"fcvt.{_FMT[a['fmt']]}.{_INT.get(a['kind'], '?')}"
    if pattern.name in ("FMV_X", "FMV_F_X"):
        f = "wdhq"[a["fmt"]]
        return f"fmv.x.{f}" if pattern.name == "FMV_X" else f"fmv.{f}.x"
    if "fmt" in a:
        return f"{name}.{_FMT[a['fmt']]}"
    if "aq" in a:
        return name + {0: "", 1: ".rl", 2: ".aq", 3: ".aqrl"}[a["aq"] << 1 | a["rl"]]
    return name


def _agrees(pattern: Pattern, word: int, mnemonic: str) -> bool:
    if pattern.name in ("VLOAD", "VSTORE", "OP_V", "OP_VE"):
        return mnemonic.startswith("v")  # (the vector helper decodes the rest)
    if pattern.name == "FENCE":
        return mnemonic in ("fence", "fence.tso", "pause")
    if pattern.name == "ORI" and mnemonic.startswith("prefetch."):
        return True  # Zicbop's hints: ori x0, which pemu runs as that (no effect)
    return mnemonic == _mnemonic(pattern, word)


def _objdump(words: list[int], work: Path) -> list[str]:
    for tool in ("as", "objdump"):
        if shutil.which(f"riscv64-linux-gnu-{tool}") is None:
            pytest.skip(f"riscv64-linux-gnu-{tool} is not installed")
    (work / "w.s").write_text("".join(f".insn 4, 0x{w:08x}\n" for w in words))
    subprocess.run(["riscv64-linux-gnu-as", f"-march={MARCH_MAX}", "-o", str(work / "w.o"),
                    str(work / "w.s")], check=True, capture_output=True)
    out = subprocess.run(["riscv64-linux-gnu-objdump", "-d", "-M", "no-aliases",
                          str(work / "w.o")], capture_output=True, text=True,
                         check=True).stdout
    rows = [m.group(2) for m in map(_LINE.match, out.splitlines()) if m]
    assert len(rows) == len(words)
    return rows


def test_patterns_are_what_objdump_names(tmp_path: Path) -> None:
    rng = random.Random(11)
    words = [w for p in DECODE_32.patterns for w in _words_of(p, rng, 24)]
    mismatches, seen = [], set()
    for word, mnemonic in zip(words, _objdump(words, tmp_path), strict=True):
        if mnemonic.startswith("."):
            continue  # a reserved value of some field (or an unknown extension)
        candidates = DECODE_32.candidates(word)
        agreeing = [p.name for p in candidates if _agrees(p, word, mnemonic)]
        seen.update(agreeing)
        if not agreeing:
            mismatches.append(f"0x{word:08x}: objdump {mnemonic}, table "
                              f"{[_mnemonic(p, word) for p in candidates]}")
    assert not mismatches, f"{len(mismatches)} mismatches:\n" + "\n".join(mismatches[:30])
    never = {p.name for p in DECODE_32.patterns} - seen - UNKNOWN_TO_BINUTILS
    assert not never, f"patterns objdump never named: {sorted(never)}"


# -- SIGILL on qemu-riscv64 and on pemu -------------------------------------------------------

N_WORDS = 1000
SIGILL, SIGTRAP, SIGBUS, SIGFPE, SIGSEGV = 4, 5, 7, 8, 11
# the major opcodes of everything but jumps and branches (those would leave the harness)
_MAJORS = [0x03, 0x07, 0x0F, 0x13, 0x17, 0x1B, 0x23, 0x27, 0x2F, 0x33, 0x37, 0x3B, 0x43,
           0x47, 0x4B, 0x4F, 0x53, 0x73, 0x57, 0x77, 0x0B, 0x2B, 0x5B, 0x7B]
_FUNCT7 = [0x00, 0x01, 0x04, 0x05, 0x07, 0x10, 0x14, 0x20, 0x24, 0x30, 0x34, 0x08, 0x09,
           0x0C, 0x0D, 0x2C, 0x2D, 0x50, 0x51, 0x60, 0x61, 0x68, 0x69, 0x70, 0x71, 0x78, 0x79]
_IMM12 = [0x600, 0x601, 0x602, 0x604, 0x605, 0x287, 0x6B8, 0x687, 0x300, 0x100, 0x108,
          0x000, 0x001, 0x002, 0x004, 0x00D, 0x01D]


def _random_words(rng: random.Random) -> list[int]:
    words = []
    while len(words) < N_WORDS:
        word = (rng.getrandbits(32) & ~0x7F) | rng.choice(_MAJORS)
        pick = rng.random()
        if pick < 0.45:
            word = (word & 0x01FF_FFFF) | rng.choice(_FUNCT7) << 25
        elif pick < 0.65:
            word = (word & 0x000F_FFFF) | rng.choice(_IMM12) << 20
        if word & 0x7F == 0x73 and word & 0x7000 == 0 and word >> 7 & 0x1FFF == 0:
            continue  # ecall/ebreak/xret-like SYSTEM words with rd = rs1 = 0: a syscall
        words.append(word)
    return words


_HARNESS = r"""
    .globl _start
    .equ N, {n}
_start:
    la a0, slot                         # the slot's page becomes writable (and stays
    srli a0, a0, 12                     # executable): each word is stored there in turn
    slli a0, a0, 12
    li a1, 4096
    li a2, 7
    li a7, 226                          # mprotect
    ecall
    la a1, altstack                     # signals run on their own stack: sp is clobbered
    li a2, 0
    li a3, 65536
    la a0, stack_t
    sd a1, 0(a0)
    sw a2, 8(a0)
    sd a3, 16(a0)
    li a1, 0
    li a7, 132                          # sigaltstack
    ecall
    la a1, sigact                       # handler, SA_SIGINFO | SA_ONSTACK | SA_NODEFER
    la a0, handler
    sd a0, 0(a1)
    li a0, 0x08000004 | 0x40000000
    sd a0, 8(a1)
    .irp sig, {signals}
    li a0, \sig
    la a1, sigact
    li a2, 0
    li a3, 8
    li a7, 134                          # rt_sigaction
    ecall
    .endr
next:
    la t0, index
    ld t1, 0(t0)
    li t2, N
    beq t1, t2, done
    la t2, words
    slli t3, t1, 2
    add t2, t2, t3
    lw t3, 0(t2)
    la t4, slot
    sw t3, 0(t4)
    fence.i
    csrw fcsr, zero
    la x31, scratch + 32768             # every register points into the scratch buffer
    .irp r, 1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30
    mv x\r, x31
    .endr
slot:
    .word 0x00000013
after:
    la t0, index
    ld t1, 0(t0)
    addi t1, t1, 1
    sd t1, 0(t0)
    j next
done:
    li a0, 1
    la a1, results
    li a2, N
    li a7, 64                           # write
    ecall
    li a0, 0
    li a7, 93                           # exit
    ecall

handler:                                # a0: signal, a2: ucontext
    la t0, index
    ld t1, 0(t0)
    la t2, results
    add t2, t2, t1
    sb a0, 0(t2)
    la t0, after
    sd t0, 176(a2)                      # uc_mcontext.sc_regs.pc
    ret

    .data
    .align 3
index: .dword 0
stack_t: .dword 0, 0, 0
sigact: .dword 0, 0, 0, 0
words:
{words}
    .bss
results: .space N
    .align 12
scratch: .space 65536
altstack: .space 65536
"""


def _harness(words: list[int]) -> str:
    lines = "\n".join(f"    .word 0x{w:08x}" for w in words)
    signals = ",".join(str(s) for s in (SIGILL, SIGTRAP, SIGBUS, SIGFPE, SIGSEGV))
    return _HARNESS.format(n=len(words), signals=signals, words=lines)


@pytest.fixture(scope="module")
def sigill_program(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[int], bytes]:
    if shutil.which("qemu-riscv64") is None:
        pytest.skip("qemu-riscv64 (Debian qemu-user) is not installed")
    words = _random_words(random.Random(2026))
    elf, _ = build(_harness(words), tmp_path_factory.mktemp("sigill"), rvc=False)
    proc = subprocess.run(["qemu-riscv64", "-cpu", QEMU_CPU, str(elf)], capture_output=True,
                          timeout=120, check=False)
    assert proc.returncode == 0 and len(proc.stdout) == len(words), proc.stderr[-2000:]
    return elf, words, proc.stdout


# pemu's default hart (-cpu rv64) as qemu 7.2 spells it
QEMU_CPU = "rv64,zba=true,zbb=true,zbc=true,zbs=true"


@pytest.mark.parametrize("backend", ["native", "python"])
def test_sigill_matches_qemu(sigill_program: tuple[Path, list[int], bytes],
                             backend: str) -> None:
    elf, words, qemu_out = sigill_program
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-m", "pemu.linux_user.main", "-accel",
                           f"tcg,backend={backend}", str(elf)], capture_output=True,
                          timeout=600, env=env, check=False)
    assert proc.returncode == 0 and len(proc.stdout) == len(words), proc.stderr[-2000:]
    illegal = sum(b == SIGILL for b in qemu_out)
    assert 0.1 * len(words) < illegal < 0.9 * len(words)  # both outcomes are common
    differ = [f"0x{w:08x}: qemu {'SIGILL' if q == SIGILL else 'legal'}, "
              f"pemu {'SIGILL' if p == SIGILL else 'legal'}"
              for w, q, p in zip(words, qemu_out, proc.stdout, strict=True)
              if (q == SIGILL) != (p == SIGILL)]
    assert not differ, f"{len(differ)} differences:\n" + "\n".join(differ[:30])
