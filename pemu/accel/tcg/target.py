"""What the TCG engine, its backends and the softmmu need from a guest architecture.

accel/tcg knows no guest: a target (target/<arch>/ in the tree) describes itself with one
``TCGTarget`` - QEMU's ``TranslatorOps`` and the parts of ``CPUClass`` the accelerator
uses - and whoever picks the architecture (linux-user, a board, a test) passes it to
``TCGEngine`` or ``SystemTranslator``.  Targets import accel/tcg, never the reverse.

Every hook here is looked up once, when an engine, backend or vCPU is built: the hot
paths (generated code, dispatch loops) see plain slot numbers and bound functions.

Pieces:

* ``StateLayout``: where the engine and the backends find the pc, the exit request and
  the native dispatcher's slots in the CPU state block (64-bit words).
* ``translate``: the frontend, guest code at a pc -> one ``ir.Block``.
* ``new_state``: a fresh ``CPUState`` (the state block plus the target's accessors).
* ``disassemble`` / ``dump_registers``: ``-d in_asm`` and ``-d cpu``.
* system mode only: ``mmu_index`` (block flags -> MMU index of its data accesses),
  ``fetch_index`` (block flags -> the execute TLB's index), ``fetch_fault``; the page
  walk and protection checks come per vCPU as a ``GuestMMU`` (see softmmu.py), and
  exception and interrupt entry are the target's vCPU class, a subclass of
  system_cpu.SystemCPU (what machine.Machine asks of it is listed there).
* native FP: a helper the host FPU can compute carries ``Helper.host_float``
  (host_float.py); the backend needs no table from the target.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from pemu.accel.tcg.ir import Block

# fetch(addr, size) -> little-endian code bytes as an int; raises if it cannot read
Fetch = Callable[[int, int], int]


class TranslateBlock(Protocol):
    def __call__(self, pc: int, flags: int, fetch: Fetch, *, max_insns: int = 256,
                 inline_atomics: bool = False) -> Block:
        """Guest code at ``pc`` under block ``flags`` -> one IR block.  A raise on the
        first instruction propagates; ``inline_atomics``: only one thread runs guest
        code, so atomics may be plain IR loads and stores."""


class CPUState(Protocol):
    """A vCPU's state block: ``slots`` is the 64-bit word view translated code uses,
    ``address`` its host address (for native code)."""

    slots: memoryview
    address: int

    @property
    def pc(self) -> int: ...

    def copy_from(self, other: CPUState) -> None: ...


@dataclass(frozen=True)
class StateLayout:
    """Slot numbers in the state block that code outside the target reads or writes."""

    n_slots: int
    pc: int  # the next guest pc, where the dispatcher looks and a trap leaves it
    exit_request: int  # non-zero: leave translated code at the next block entry
    tb_flags: int  # the block flags the native dispatcher matches (0 in user mode)
    native_jump_cache: int  # host address of the native jump cache in use
    native_tlb: int  # host address of the native softmmu TLB in use (system mode)
    # host address of a second native jump cache the dispatcher probes after a miss
    # (system mode: blocks on global pages, shared by every address space); None: none
    native_global_jump_cache: int | None = None
    # log2 of the guest's instruction alignment: the native jump cache is indexed by
    # pc >> this (RISC-V's 2-byte instructions: 1; A64's 4-byte ones: 2, else half of
    # the entries would never be used)
    jc_pc_shift: int = 1


@dataclass(frozen=True)
class TCGTarget:
    """One guest architecture, as the TCG accelerator sees it."""

    name: str
    layout: StateLayout
    translate: TranslateBlock
    new_state: Callable[[], CPUState]
    disassemble: Callable[[bytes, int], list[str]]  # (code, pc) -> lines, for in_asm
    dump_registers: Callable[[CPUState], str]  # -d cpu
    # what else decides the code ``translate`` makes (enabled extensions): blocks
    # translated under another configuration are never reused (the translation cache)
    config: str = ""
    # run the IR optimizer on every block: a target whose frontend already emits
    # what the optimizer would leave (bench/bench_translate.py --optimizer always/never
    # compares) saves its cost on every translation, a first boot's hot path
    optimize: bool = True
    # -- system mode (None for a user-mode-only target) --
    mmu_index: Callable[[int], int] | None = None  # block flags -> data MMU index
    fetch_index: Callable[[int], int] | None = None  # block flags -> execute TLB index
    fetch_fault: Callable[[int], BaseException] | None = None  # code at paddr unreadable
    # block flags -> its code may be position-independent (ir.Block.pc_relative): the
    # frontend emits every value derived from the pc as PC_REL and every GOTO_PC
    # target relative to the block.  Where it is true, the translation cache keys
    # blocks by their offset in the page, not their virtual pc (user programs under
    # ASLR: the same library at another address in every process, every boot)
    relocatable: Callable[[int], bool] | None = None
    # the frontend takes the ``pause_ends_turn`` option: where vCPUs take turns on one
    # thread, its spin-wait hint ends the vCPU's turn (system_cpu.SystemCPU.end_turn)
    pause_ends_turn: bool = False


__all__ = ["CPUState", "Fetch", "StateLayout", "TCGTarget", "TranslateBlock"]
