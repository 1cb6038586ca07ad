"""RISC-V 64 disassembly for ``-d in_asm`` logs, through capstone.

Capstone does not know every extension pemu runs (Zba/Zbb/Zbs among them), so
anything it cannot decode is shown as a raw ``.insn`` word and the walk continues
with the length the low bits give.
"""

from __future__ import annotations

from functools import cache

from pemu.target.riscv.translate import insn_length


@cache
def _disassembler():  # -> capstone.Cs, or None without capstone
    try:
        # capstone is optional and slow to import: only -d in_asm and the tests load it
        import capstone
    except ImportError:
        return None
    return capstone.Cs(capstone.CS_ARCH_RISCV,
                       capstone.CS_MODE_RISCV64 | capstone.CS_MODE_RISCVC)


def disassemble(code: bytes, pc: int) -> list[str]:
    """One line per instruction: ``0x<addr>:  <hex bytes>  <mnemonic> <operands>``
    (without capstone, the raw bytes in one line)."""
    md = _disassembler()
    if md is None:
        return [f"0x{pc:016x}:  {code.hex()}"]
    lines = []
    off = 0
    while off + 2 <= len(code):
        length = insn_length(code[off] | code[off + 1] << 8)
        if off + length > len(code):
            break
        chunk = code[off:off + length]
        decoded = next(md.disasm(chunk, pc + off, 1), None)
        if decoded is not None and decoded.size == length:
            text = f"{decoded.mnemonic} {decoded.op_str}".strip()
        else:
            text = f".insn {length}, 0x{int.from_bytes(chunk, 'little'):0{length * 2}x}"
        lines.append(f"0x{pc + off:x}:  {chunk[::-1].hex():>8}  {text}")
        off += length
    return lines
