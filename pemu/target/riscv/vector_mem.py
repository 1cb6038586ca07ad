"""Vector loads and stores (RVV 1.0 chapter 7): unit-stride, strided, indexed
(ordered and unordered), segment (nf), whole-register, mask and fault-only-first.

Every element goes through the hart's data-access path (``env.mem``: the guest
memory in user mode, the softmmu with the current data privilege in system mode), one
element at a time in element order, so a fault stops the instruction with vstart at
the faulting element and the elements before it done, as the spec wants for a resumable
trap.  A fault-only-first load faulting on an element after the first instead trims
vl to that element and completes.  Unmasked unit-stride, whole-register and mask
accesses first try one copy of the whole run (``_bulk``: what a kernel's vector memcpy
and copy_to_user do), taken only where it is exactly what the element loop would do.
"""

from __future__ import annotations

from collections.abc import Callable

from pemu.target.riscv.vector_exec import IllegalVector, VInsn

MASK64 = (1 << 64) - 1
_EEW_BYTES = {0: 1, 5: 2, 6: 4, 7: 8}  # width field -> element size
MOP_UNIT, MOP_INDEXED_UNORDERED, MOP_STRIDED, MOP_INDEXED_ORDERED = 0, 1, 2, 3
LUMOP_WHOLE, LUMOP_MASK, LUMOP_FAULT_FIRST = 0x08, 0x0B, 0x10


def exec_mem(v: VInsn) -> None:
    insn = v.insn
    store = insn & 0x7F == 0x27
    size = _EEW_BYTES[v.f3]
    if insn >> 28 & 1:  # mew: EEW above 64 bits, reserved
        raise IllegalVector
    nf = (insn >> 29) + 1
    mop = (insn >> 26) & 3
    if mop == MOP_UNIT:
        lumop = v.rs2
        if lumop == LUMOP_WHOLE:
            _whole_register(v, store, size, nf)
        elif lumop == LUMOP_MASK:
            _mask(v, store, size, nf)
        elif lumop == 0 or (lumop == LUMOP_FAULT_FIRST and not store):
            _strided(v, store, size, nf, None, lumop == LUMOP_FAULT_FIRST)
        else:
            raise IllegalVector
    elif mop == MOP_STRIDED:
        _strided(v, store, size, nf, v.x(v.rs2), False)
    else:
        _indexed(v, store, size, nf)


def _access(v: VInsn) -> tuple[Callable[[int, int], int], Callable[[int, int, int], None]]:
    mem = v.env.mem  # type: ignore[attr-defined]
    return mem.load_slow, mem.store_slow


def _strided(v: VInsn, store: bool, size: int, nf: int, stride: int | None,
             fault_first: bool) -> None:
    """Unit-stride (``stride`` None: the fields of a segment are packed) and strided."""
    vt = v.require_vtype()
    if size * 8 > v.elen:
        raise IllegalVector
    emul = v.group_regs(size, vt.sew_bytes)
    base = v.x(v.rs1)
    if stride is None and nf == 1 and v.vm:
        v.require_aligned(v.vd, emul)
        if not store:
            v.require_no_v0_overlap()
        if _bulk(v, store, size, v.vs.vstart, v.vs.vl):
            return
    step = nf * size if stride is None else stride
    _segments(v, store, size, nf, emul, lambda i: base + i * step, fault_first)


def _bulk(v: VInsn, store: bool, size: int, first: int, count: int) -> bool:
    """Elements first..count-1 of the register group at vd, packed from rs1 on, moved
    in one copy: a register group is one run of bytes in the same little-endian order
    as memory.  False, with nothing done, where that cannot be exact (a fault
    somewhere, MMIO, a page holding translated code, a debug trigger): the element
    loop then does it and stops at the right element."""
    n = (count - first) * size
    if n <= 0:
        return True
    addr = v.data_address(v.x(v.rs1) + first * size)
    if addr + n > MASK64 or v.data_address(v.x(v.rs1) + first * size + n - 1) != addr + n - 1:
        return False  # wraps around the address space (or the pointer-masked one)
    at = v.vd * v.vlenb + first * size
    mem = v.env.mem  # type: ignore[attr-defined]
    try:
        if store:
            return mem.store_bytes(addr, bytes(v.regs[at:at + n]))
        data = mem.load_bytes(addr, n)
    except Exception:  # noqa: BLE001 - a guest fault: the element loop raises it exactly
        return False
    if data is None:
        return False
    v.regs[at:at + n] = data
    return True


def _indexed(v: VInsn, store: bool, index_size: int, nf: int) -> None:
    """Indexed: element i at rs1 + vs2[i] (vs2's EEW from the width field, unsigned
    offsets); the data has SEW/LMUL.  Ordered and unordered are both run in order."""
    vt = v.require_vtype()
    if index_size * 8 > v.elen:
        raise IllegalVector
    size = vt.sew_bytes
    v.require_aligned(v.rs2, v.group_regs(index_size, size))
    base = v.x(v.rs1)
    _segments(v, store, size, nf, v.group_regs(),
              lambda i: base + v.elem(v.rs2, i, index_size), False)


def _segments(v: VInsn, store: bool, size: int, nf: int, emul: int,
              address: Callable[[int], int], fault_first: bool) -> None:
    """The active elements from vstart to vl, each with its nf fields (field f in the
    register group vd + f * emul, at address(i) + f * size)."""
    v.require_aligned(v.vd, emul)
    if nf * emul > 8 or v.vd + nf * emul > 32:
        raise IllegalVector
    if not store:
        v.require_no_v0_overlap()
    load, store_elem = _access(v)
    vs = v.vs
    for i in v.body():
        if not v.active(i):
            continue
        addr = address(i)
        try:
            for f in range(nf):
                reg = v.vd + f * emul
                a = v.data_address(addr + f * size)
                if store:
                    store_elem(a, size, v.elem(reg, i, size))
                else:
                    v.set_elem(reg, i, size, load(a, size))
        except Exception:
            if fault_first and i > 0:
                vs.vl = i  # trim vl to the elements loaded; no trap
                return
            vs.vstart = i
            raise


def _whole_register(v: VInsn, store: bool, size: int, nf: int) -> None:
    """vl<nf>re<eew>.v / vs<nf>r.v: nf registers as EEW elements, whatever vtype and vl
    (a store's EEW is 8: it moves bytes)."""
    if not v.vm or nf not in (1, 2, 4, 8):
        raise IllegalVector
    if store:
        size = 1
    v.require_aligned(v.vd, nf)
    _contiguous(v, store, size, nf * v.vlenb // size)


def _mask(v: VInsn, store: bool, size: int, nf: int) -> None:
    """vlm.v / vsm.v: ceil(vl / 8) bytes, unmasked."""
    v.require_vtype()
    if size != 1 or nf != 1 or not v.vm:
        raise IllegalVector
    _contiguous(v, store, 1, (v.vs.vl + 7) // 8)


def _contiguous(v: VInsn, store: bool, size: int, count: int) -> None:
    """Elements vstart..count-1 of vd, unmasked, packed from rs1 on."""
    if _bulk(v, store, size, v.vs.vstart, count):
        return
    base = v.x(v.rs1)
    load, store_elem = _access(v)
    for i in range(v.vs.vstart, count):
        a = v.data_address(base + i * size)
        try:
            if store:
                store_elem(a, size, v.elem(v.vd, i, size))
            else:
                v.set_elem(v.vd, i, size, load(a, size))
        except Exception:
            v.vs.vstart = i
            raise


__all__ = ["exec_mem"]
