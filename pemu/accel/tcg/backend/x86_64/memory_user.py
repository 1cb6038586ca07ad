"""Guest loads and stores in Linux user mode: guest address A is host ``base + A``.

The fast path checks, inline, that the access is naturally aligned (so it stays in
one page), that A is inside the guest address space, and that the page's byte in
the readable (or writable-fast) table is set; then it is one host ``mov`` at
``[r15 + A]``.  Everything else - unmapped or protected pages, misaligned accesses,
stores to pages holding translated code - calls the vmem slow path, which either
does the access or raises ``GuestFault`` precisely.

System mode plugs in a different object with the same two methods (the softmmu TLB
lookup inline, its helpers on a miss).
"""

from __future__ import annotations

from pemu.accel.tcg.ir import CALL_SIDE_EFFECTS, Const, Helper, Op

from . import encoder as x
from .encoder import R11, R12, R13, R15, RCX, Mem

# registers the dispatcher loads once on entry (see runtime.py)
GUEST_BASE_REG = R15
READ_TABLE_REG = R12
WRITE_TABLE_REG = R13


class UserMemory:
    def __init__(self, vmem: object, callback: object) -> None:
        self.vmem = vmem
        self.n_pages = len(vmem.readable)
        self.load_helper = Helper("load_slow", vmem.load_slow, flags=CALL_SIDE_EFFECTS)
        self.store_helper = Helper("store_slow", vmem.store_slow, flags=CALL_SIDE_EFFECTS,
                                   n_out=0)
        self._callback = callback
        self._check_templates: dict[tuple[int, int, int], tuple[bytes, list[int]]] = {}

    def _checks(self, cg: object, addr: int, size: int, table: int, slow: x.Label) -> None:
        """The inline checks; every jump in them goes to ``slow``.

        The sequence depends only on (addr, size, table), so it is assembled once per
        combination and then copied, with its jumps' rel32 fields re-pointed.
        """
        key = (addr, size, table)
        template = self._check_templates.get(key)
        if template is None:
            template = self._check_templates[key] = self._assemble_checks(addr, size, table)
        code, jumps = template
        a = cg.asm
        at = len(a.buf)
        a.buf += code
        a.fixups.extend((at + j, slow) for j in jumps)

    def _assemble_checks(self, addr: int, size: int, table: int) -> tuple[bytes, list[int]]:
        a = x.Assembler()
        slow = x.Label()
        if size > 1:
            a.op(b"\xF7", 0, addr, 32)  # test addr32, size-1
            a.imm32(size - 1)
            a.jcc(x.CC_NE, slow)
        a.mov_rr(64, R11, addr)
        a.shift_ri(x.SHR, 64, R11, 12)
        a.alu_ri(x.CMP, 64, R11, self.n_pages)
        a.jcc(x.CC_AE, slow)
        a.op(b"\x80", 7, Mem(table, 0, R11), 32)  # cmp byte [table + page], 0
        a.byte(0)
        a.jcc(x.CC_E, slow)
        return bytes(a.buf), [at for at, _label in a.fixups]

    def _address(self, cg: object, v: object) -> int:
        if isinstance(v, Const):
            cg.asm.mov_ri(RCX, v.value)
            return RCX
        return cg.ra.use(v)

    def load(self, cg: object, op: Op) -> None:
        a = cg.asm
        memop = op.aux
        size, w = memop.size, op.type
        addr = self._address(cg, op.ins[0])
        d = op.outs[0]
        dst = cg.ra.choose_out(d, None, None, {addr})
        back = x.Label()

        def extend(src: int | Mem) -> None:
            if memop.signed and size < 8:
                a.movsx(w, dst, src, size)
            elif size == 8 and w == 32:
                a.movzx(dst, src, 4)
            else:
                a.movzx(dst, src, size)

        slow = cg.memory_slow_path("ld", size, lambda: a.mov_rr(64, R11, addr),
                                   lambda: extend(R11), back)
        self._checks(cg, addr, size, READ_TABLE_REG, slow)
        extend(Mem(GUEST_BASE_REG, 0, addr))
        a.bind(back)
        cg.ra.set_out(d, dst)

    def store(self, cg: object, op: Op) -> None:
        a = cg.asm
        size = op.aux.size
        value, addr_v = op.ins
        addr = self._address(cg, addr_v)
        imm = None
        rv = -1
        if isinstance(value, Const):
            v = value.value & ((1 << (8 * size)) - 1)
            s = v - (1 << 64) if size == 8 and v >> 63 else v
            if size < 8 or x.fits_i32(s):
                imm = s if size == 8 else v
            else:
                rv = cg.ra.pick({addr})
                cg.ra.locked.add(rv)
                a.mov_ri(rv, v)
        else:
            rv = cg.ra.use(value)
        back = x.Label()

        def set_args() -> None:
            a.mov_rr(64, R11, addr)  # first: a constant address lives in rcx
            if imm is None:
                a.mov_rr(64, RCX, rv)
            else:
                a.mov_ri(RCX, imm & ((1 << (8 * size)) - 1))

        slow = cg.memory_slow_path("st", size, set_args, lambda: None, back)
        self._checks(cg, addr, size, WRITE_TABLE_REG, slow)
        target = Mem(GUEST_BASE_REG, 0, addr)
        if imm is None:
            a.store(size, target, rv)
        else:
            a.store_imm(size, target, imm)
        a.bind(back)
