"""The one translation path: frontend -> optimizer -> backend, with its -d logging.

User mode (engine.TCGEngine) and system mode (system_cpu.SystemTranslator) differ in
where code comes from (a ``fetch`` function) and how translated blocks are cached
(by virtual page, or by physical page with snapshots); turning guest code into a
callable block is the same for both and lives here.
"""

from __future__ import annotations

from dataclasses import dataclass

from pemu.accel.tcg.block_record import recorder_from_env
from pemu.accel.tcg.gc_policy import pace_collector_for_translation
from pemu.accel.tcg.ir import Block
from pemu.accel.tcg.log import TCGLog
from pemu.accel.tcg.optimize import optimize
from pemu.accel.tcg.target import Fetch, TCGTarget


@dataclass(eq=False)
class Translation:
    block: Block
    fn: object  # what the backend made: called as fn(state slots, cpu) -> next pc
    source: str  # the host code as text, for -d out_asm ("" unless asked for)


class BlockTranslator:
    """Guest code -> compiled block, for one target and one log."""

    def __init__(self, target: TCGTarget, log: TCGLog, max_insns: int,
                 inline_atomics: bool = False) -> None:
        """``inline_atomics``: one thread runs all guest code (system mode)."""
        self.frontend = target.translate
        self.optimize = target.optimize
        self.log = log
        self.max_insns = max_insns
        self.inline_atomics = inline_atomics
        log.use_target(target.disassemble, target.dump_registers)
        pace_collector_for_translation()
        # PEMU_RECORD_BLOCKS: the blocks this run translates, for bench_translate.py
        self.recorder = recorder_from_env(target.name, target.config)

    def translate(self, backend: object, pc: int, flags: int, fetch: Fetch,
                  max_insns: int | None = None, pc_relative: bool = False,
                  **frontend_options: object) -> Translation:
        """Translate the code at ``pc`` under ``flags`` and compile it with ``backend``
        (may raise the guest's fault if the first instruction cannot be fetched);
        ``pc_relative``: position-independent code (ir.Block.pc_relative; only for a
        target whose ``TCGTarget.relocatable`` says so); ``frontend_options`` go to
        the frontend (system mode's ``break_pcs``)."""
        log = self.log
        max_insns = max_insns or self.max_insns
        recorder = self.recorder
        if recorder is not None:
            fetch, fetches = recorder.recording(fetch)
        block = self.frontend(pc, flags, fetch, max_insns=max_insns,
                              inline_atomics=self.inline_atomics, **frontend_options)
        block.pc_relative = pc_relative
        if recorder is not None:
            recorder.write(pc, flags, max_insns, self.inline_atomics, frontend_options,
                           fetches)
        if log.enabled("in_asm"):
            log.guest_code(pc, bytes(fetch(pc + i, 1) for i in range(block.guest_size)))
        log.block_translated_ir(block, "op")
        if self.optimize:
            optimize(block)
        log.block_translated_ir(block, "op_opt")
        compiled = backend.compile(block)
        log.host_code(compiled.source)
        return Translation(block, compiled.fn, compiled.source)


__all__ = ["BlockTranslator", "Translation"]
