"""Guest loads and stores: the code both memory models share.

A memory model (memory_user.UserMemory, memory_softmmu.SoftmmuMemory) decides how an
address is checked and turned into a host address (``fast_path``) and which slow-path
thunk handles the rest (``thunk_key``); this class emits the access around them: the
value's register or immediate, the sign or zero extension, and the out-of-line call
of the thunk that the fast path's checks jump to.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

from pemu.accel.tcg.ir import Const, MemOp, Op

from . import encoder as x
from .encoder import R11, RAX, RCX, RDI, RSI, RSP, Mem
from .regalloc import FRAME_CTX


def emit_extend(a: x.Assembler, memop: MemOp, w: int, dst: int, src: int | Mem) -> None:
    """dst = the loaded value in src, extended as the IR op asks."""
    size = memop.size
    if memop.signed and size < 8:
        a.movsx(w, dst, src, size)
    elif size == 8 and w == 32:
        a.movzx(dst, src, 4)
    else:
        a.movzx(dst, src, size)


# An access's labels, by their index in its templates (AccessCode): SLOW the slow
# path, VICTIM the model's cold code, FOUND where it jumps back to (softmmu: the victim
# entry hit), BACK where the access goes on.
SLOW, VICTIM, FOUND, BACK = range(4)


def _labels() -> list[x.Label]:
    return [x.Label(), x.Label(), x.Label(), x.Label()]


def _thunk_call(a: x.Assembler) -> tuple[int, int]:
    """call thunk; leave through the exception exit if it left a pending exception.
    Returns the offsets of the two rel32 fields (thunk, exception exit) in ``a``."""
    a.byte(0xE8)
    call_at = a.pos()
    a.buf += b"\0\0\0\0"
    a.load(64, RCX, Mem(RSP, FRAME_CTX))
    a.alu_ri(x.CMP, 64, Mem(RCX, 0), 0)
    a.byte(0x0F, 0x80 + x.CC_NE)
    exc_at = a.pos()
    a.buf += b"\0\0\0\0"
    return call_at, exc_at


class AccessCode:
    """The code of one kind of guest access (registers, size, extension, model key),
    assembled once as templates over the access's labels (SLOW, VICTIM, FOUND, BACK)
    and then copied: ``hot`` inline, where the access is; after the block's body, at
    its slow path, the pc store and then ``emit_cold``: ``tail`` (the arguments, the
    thunk call, the jump back) and ``cold`` (the model's own out-of-line code, e.g. a
    victim TLB check).  Each copy's jumps are patched in place as soon as their targets
    are known: no labels or fixups per access."""

    __slots__ = ("hot", "target", "back", "found", "hot_jumps", "tail", "tail_back",
                 "ext", "cold", "cold_jumps")

    def __init__(self, hot: x.Template, target: Mem | None, tail: x.Template,
                 cold: x.Template | None) -> None:
        binds = dict(hot.binds)
        if set(binds) - {FOUND, BACK} or tail.binds or [i for _at, i in tail.jumps
                                                       if i != BACK]:
            raise ValueError("access templates: a label bound or aimed at out of place")
        if cold is not None and cold.binds != ((VICTIM, 0),):
            raise ValueError("access templates: the cold code must start at VICTIM")
        self.hot = hot.code
        self.target = target  # the host operand the checks leave (None: always slow)
        self.back = binds.get(BACK)  # None: the caller's constant store comes first
        self.found = binds.get(FOUND)
        self.hot_jumps = hot.jumps  # (rel32 field, label)
        self.tail = tail.code
        self.tail_back = tail.jumps[0][0]
        self.ext = tail.ext  # the rel32 fields of the thunk call and exception exit
        self.cold = None if cold is None else cold.code
        self.cold_jumps = () if cold is None else cold.jumps
        if (VICTIM in [i for _at, i in self.hot_jumps]) != (cold is not None):
            raise ValueError("access templates: a jump to VICTIM needs the cold code")

    def emit_cold(self, buf: bytearray, hot_at: int, back: int, slow: int) -> int:
        """Append the tail and the cold code to ``buf`` and patch every jump of the
        access: those of the copy of ``hot`` at ``hot_at``, the tail's back to
        ``back``, the cold code's.  ``slow``: where the slow path starts (its stores
        of dirty globals and of the pc come before the tail).  Returns where the tail
        starts (its ``ext`` fields are relative to it)."""
        pack = struct.pack_into
        tail_at = len(buf)
        buf += self.tail
        at = tail_at + self.tail_back
        pack("<i", buf, at, back - (at + 4))
        victim = len(buf)
        if self.cold is not None:
            buf += self.cold
        found = None if self.found is None else hot_at + self.found
        where = (slow, victim, found, back)  # by label: SLOW, VICTIM, FOUND, BACK
        for off, i in self.hot_jumps:
            at = hot_at + off
            pack("<i", buf, at, where[i] - (at + 4))
        for off, i in self.cold_jumps:
            at = victim + off
            pack("<i", buf, at, where[i] - (at + 4))
        return tail_at


class GuestMemoryCodegen:
    """load/store for the codegen; subclasses supply the methods below."""

    def __init__(self) -> None:
        # (kind, registers, size, ..., access_key()) -> AccessCode: assembled once per
        # key, then copied (the check sequence is most of what an access emits)
        self._templates: dict[tuple, AccessCode] = {}

    # -- the memory model's part ---------------------------------------------------------
    def assemble_fast_path(self, a: x.Assembler, labels: list[x.Label], addr: int,
                           size: int, store: bool) -> Mem | None:
        """Emit the checks (jumping to ``labels[SLOW]``, or to the model's cold code)
        and return the host operand, or None when every access takes the slow path."""
        raise NotImplementedError

    def assemble_cold(self, a: x.Assembler, labels: list[x.Label], addr: int, size: int,
                      store: bool) -> None:
        """The access's own out-of-line code after its slow path (none)."""

    def access_key(self) -> object:
        """What the fast path's code depends on beyond the access (none)."""
        return None

    # a store's fast path leaves rcx for emit_store_done (softmmu: its page's mark)
    marks_stores = False

    def emit_store_done(self, a: x.Assembler) -> None:
        """After a store's access on the fast path: the model's bookkeeping (none)."""

    def emit_routines(self, a: x.Assembler) -> None:
        """Host routines the memory thunks call, emitted once before them (none)."""

    def routine_offset(self, helper: object) -> int | None:
        """The dispatcher-code offset of a routine emit_routines made as ``helper``'s
        machine code (none)."""
        return None

    def emit_refill(self, a: x.Assembler, key: tuple, done: x.Label) -> None:
        """Code at the start of the memory thunk ``key`` that may do the access itself
        and jump to ``done`` (a load's value in r11) before the Python call (none)."""

    def emit_code_refill(self, a: x.Assembler, flags: Mem, jump_cache: Mem,
                         found: x.Label, miss: x.Label) -> None:
        """The dispatcher's code TLB refill (system mode), after every code TLB
        missed: rax = the pc, rcx = the byte offset of its entry in the address
        space's code TLB, ``flags``: the block flags' slot.  It may fill that entry
        and jump to ``found`` with rsi = the physical page, rdi = the jump cache in
        the ``jump_cache`` slot and rax = the pc; else to ``miss`` (this: always)."""
        a.jmp(miss)

    def address(self, cg: object, v: object) -> int:
        """A register holding the guest address (a constant is materialised)."""
        raise NotImplementedError

    def thunk_key(self, kind: str, size: int) -> tuple:
        """Which runtime thunk the slow path of this access calls."""
        raise NotImplementedError

    def fast_path(self, cg: object, addr: int, size: int, store: bool,
                  slow: x.Label) -> Mem | None:
        """Emit the checks (jumping to ``slow``) and return the host operand, or None
        when every access of this block takes the slow path (cmpxchg, ld/st_bytes:
        assembled in place, not from a template)."""
        labels = [slow, x.Label(), x.Label(), x.Label()]
        a = cg.asm
        target = self.assemble_fast_path(a, labels, addr, size, store)
        cg.cold.append(lambda: self.assemble_cold(a, labels, addr, size, store))
        return target

    def _cold_template(self, addr: int, size: int, store: bool) -> x.Template | None:
        labels = _labels()
        t = x.Assembler()
        self.assemble_cold(t, labels, addr, size, store)
        return x.Template(t, labels) if t.buf else None

    def load_code(self, addr: int, dst: int, memop: MemOp, w: int) -> AccessCode:
        """The code of a load from the guest address in ``addr`` into ``dst``
        (extended to w bits as ``memop`` says), under the model's current key."""
        key = ("ldw" if memop.for_store else "ld", addr, dst, memop.size, memop.signed, w,
               self.access_key())
        code = self._templates.get(key)
        if code is None:
            code = self._templates[key] = self._access_code(
                addr, memop.size, memop.for_store,
                lambda t, target: emit_extend(t, memop, w, dst, target),
                lambda t: t.mov_rr(64, R11, addr),
                lambda t: emit_extend(t, memop, w, dst, R11))
        return code

    def store_code(self, addr: int, rv: int | None, size: int) -> AccessCode:
        """The code of a store of ``rv`` (None: a constant, which the caller stores
        and passes itself: the templates stop short of it) to the guest address in
        ``addr``, under the model's current key."""
        key = ("st", addr, rv, size, self.access_key())
        code = self._templates.get(key)
        if code is None:
            def set_args(t: x.Assembler) -> None:
                t.mov_rr(64, R11, addr)  # first: a constant address may live in rcx
                t.mov_rr(64, RCX, rv)
            def store(t: x.Assembler, target: Mem) -> None:
                t.store(size, target, rv)
                self.emit_store_done(t)
            code = self._templates[key] = self._access_code(
                addr, size, True, None if rv is None else store,
                None if rv is None else set_args, lambda t: None)
        return code

    def _access_code(self, addr: int, size: int, store: bool,
                     emit_access: Callable[[x.Assembler, Mem], None] | None,
                     emit_args: Callable[[x.Assembler], None] | None,
                     emit_after: Callable[[x.Assembler], None]) -> AccessCode:
        """Assemble the templates of an access: the fast path then ``emit_access`` (of
        the host operand), BACK bound after it where ``emit_access`` is given; the slow
        path's ``emit_args``, the thunk call, ``emit_after``, the jump back."""
        labels = _labels()
        t = x.Assembler()
        target = self.assemble_fast_path(t, labels, addr, size, store)
        if target is None:
            t.jmp(labels[SLOW])
        elif emit_access is not None:
            emit_access(t, target)
        if emit_access is not None or target is None:
            t.bind(labels[BACK])
        hot = x.Template(t, labels)
        labels = _labels()
        t = x.Assembler()
        if emit_args is not None:
            emit_args(t)
        ext = _thunk_call(t)
        emit_after(t)
        t.jmp(labels[BACK])
        tail = x.Template(t, labels, ext)
        return AccessCode(hot, target, tail, self._cold_template(addr, size, store))

    def load(self, cg: object, op: Op) -> None:
        memop = op.aux
        size, w = memop.size, op.type
        addr = self.address(cg, op.ins[0])
        d = op.outs[0]
        dst = cg.ra.choose_out(d, None, None, {addr})
        kind = "ldw" if memop.for_store else "ld"  # ldw: an AMO's read (write permission)
        code = self.load_code(addr, dst, memop, w)
        buf = cg.asm.buf
        hot_at = len(buf)
        buf += code.hot
        cg.memory_slow_path(self.thunk_key(kind, size), code, hot_at, hot_at + code.back)
        cg.ra.set_out(d, dst)

    def cmpxchg(self, cg: object, op: Op) -> None:
        """The weak compare-and-swap (opcodes.CMPXCHG): the store's TLB check, then
        ``lock cmpxchg`` on the host address; where the check fails, d = expected ^ 1.
        rax is what cmpxchg compares with: saved around it unless d lives there."""
        a = cg.asm
        memop = op.aux
        size = memop.size
        addr = self.address(cg, op.ins[0])
        expected = self._in_register(cg, op.ins[1], {addr})
        new = self._in_register(cg, op.ins[2], {addr, expected})
        d = op.outs[0]
        dst = cg.ra.choose_out(d, None, None, {addr, expected, new})
        fail, back = x.Label(), x.Label()
        target = self.fast_path(cg, addr, size, True, fail)
        if target is None:
            a.jmp(fail)
        else:
            a.lea(R11, target)  # the host address: addr may be rax, clobbered below
            if self.marks_stores:
                a.push(RCX)
            a.mov_rr(64, RCX, new)
            keep_rax = dst != RAX
            if keep_rax:
                a.push(RAX)
            a.mov_rr(64, RAX, expected)
            a.lock_cmpxchg(size, Mem(R11, 0), RCX)
            emit_extend(a, memop, 64, dst, RAX)
            if keep_rax:
                a.pop(RAX)
            if self.marks_stores:
                a.pop(RCX)
                self.emit_store_done(a)
            a.jmp(back)
        a.bind(fail)
        a.mov_rr(64, dst, expected)
        a.alu_ri(x.XOR, 64, dst, 1)
        a.bind(back)
        cg.ra.set_out(d, dst)

    def copy_bytes(self, cg: object, op: Op, store: bool) -> None:
        """ld_bytes/st_bytes (opcodes.LD_BYTES): a run of n bytes inside one guest page
        whose entry allows the access, as ``rep movsb`` between the host address and
        the guest page's host address; d = 1.  Anything else: d = 0, nothing moved.
        The run's first byte goes through the memory model's own check of a one-byte
        access (so the page rules are exactly a scalar access's), its last byte is
        checked to lie on the same page."""
        a = cg.asm
        host = self._in_register(cg, op.ins[0], set())
        addr = self._in_register(cg, op.ins[1], {host})
        count = self._in_register(cg, op.ins[2], {host, addr})
        d = op.outs[0]
        dst = cg.ra.choose_out(d, None, None, {host, addr, count})
        done, fail, back = x.Label(), x.Label(), x.Label()
        a.test_rr(64, count, count)
        a.jcc(x.CC_E, done)
        a.lea(RCX, Mem(addr, -1, count))  # the last byte; on addr's page?
        a.alu_rr(x.XOR, 64, RCX, addr)
        a.shift_ri(x.SHR, 64, RCX, 12)
        a.jcc(x.CC_NE, fail)
        target = self.fast_path(cg, addr, 1, store, fail)
        if target is None:
            a.jmp(fail)
        else:
            a.lea(R11, target)
            mark = store and self.marks_stores
            if mark:
                a.push(RCX)
            # rep movsb takes rsi, rdi and rcx, which may hold any of the operands:
            # the values go through the stack, the registers' own values come back
            a.push(RSI)
            a.push(RDI)
            a.push(count)
            a.push(host)
            a.push(R11)
            a.pop(RDI if store else RSI)  # the guest page
            a.pop(RSI if store else RDI)  # the host buffer
            a.pop(RCX)
            a.byte(0xF3, 0xA4)  # rep movsb
            a.pop(RDI)
            a.pop(RSI)
            if mark:
                a.pop(RCX)
                self.emit_store_done(a)
        a.bind(done)
        a.mov_ri(dst, 1)
        a.jmp(back)
        a.bind(fail)
        a.mov_ri(dst, 0)
        a.bind(back)
        cg.ra.set_out(d, dst)

    @staticmethod
    def _in_register(cg: object, v: object, avoid: set[int]) -> int:
        """A register holding operand v (a constant is materialised, locked for the op)."""
        if isinstance(v, Const):
            r = cg.ra.pick(avoid)
            cg.ra.locked.add(r)
            cg.asm.mov_ri(r, v.value)
            return r
        return cg.ra.use(v)

    def store(self, cg: object, op: Op) -> None:
        a = cg.asm
        size = op.aux.size
        value, addr_v = op.ins
        addr = self.address(cg, addr_v)
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
        # a constant value: its imm is emitted around the templates (the store, the
        # slow path's argument), which then depend on the registers only
        code = self.store_code(addr, None if imm is not None else rv, size)
        buf = a.buf
        hot_at = len(buf)
        buf += code.hot
        if imm is None:
            cg.memory_slow_path(self.thunk_key("st", size), code, hot_at, hot_at + code.back)
            return
        if code.target is not None:
            a.store_imm(size, code.target, imm)
            self.emit_store_done(a)
            back = len(buf)
        else:
            back = hot_at + code.back

        def set_imm_args() -> None:
            a.mov_rr(64, R11, addr)
            a.mov_ri(RCX, imm & ((1 << (8 * size)) - 1))
        cg.memory_slow_path(self.thunk_key("st", size), code, hot_at, back, set_imm_args)
