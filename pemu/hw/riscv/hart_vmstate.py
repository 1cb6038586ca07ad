"""A RISC-V hart's state as the migration layer sees it: one ``VMState`` declaration.

The hart is not a ``Device`` (it is the vCPU loop's ``env``), so its declaration lives
on this small view: every field is a property over the hart's native state block
(GPRs, FPRs, pc, fflags/frm, the LR reservation, the privilege level), its
``PrivState`` (the M/S CSRs, WFI) and its PMP.  Nothing here is written per field by
hand beyond the property that names where the value lives.

What is not state: the exit-request flag, the block flags and the native jump-cache
and TLB addresses (host pointers of this process), the host-time deadline of the Sstc
timer (re-derived from stimecmp on load, as ACLINT re-bases mtime), and the TLBs and
translated code (flushed on load).

Load order: the hart's post-load re-arms stimecmp against ``time``, which reads the
ACLINT's mtime; the machine stream puts the harts after the devices for that reason.
"""

from __future__ import annotations

from collections.abc import Mapping

from pemu.hw.core import Device, VMState, VMStateField, VMStateInvalid
from pemu.target.riscv import cpu_state as rv
from pemu.target.riscv.csr_stateen import MSTATEEN_WRITABLE
from pemu.target.riscv.hyp import H_INTERRUPTS, MIGRATED_FIELDS
from pemu.target.riscv.mmu import PRV_M, PRV_S, PRV_U, SATP_LEVELS, SATP_MODE_BARE
from pemu.target.riscv.pointer_masking import ENVCFG_PMM
from pemu.target.riscv.priv import (
    ALL_INTERRUPTS,
    MENVCFG_WRITABLE,
    MIP_LCOFIP,
    S_INTERRUPTS,
    SENVCFG_WRITABLE,
)
from pemu.target.riscv.vector_state import N_VREGS, decode_vtype

# Plain PrivState registers (Python ints) that travel as they are.
_CSR_FIELDS = ("mstatus", "medeleg", "mideleg", "mie", "mip_sw", "mtvec", "stvec",
               "mscratch", "sscratch", "mepc", "sepc", "mcause", "scause", "mtval", "stval",
               "satp", "mcounteren", "scounteren", "mcountinhibit", "menvcfg", "senvcfg",
               "stimecmp", "cycle_offset")
# (LCOFIP: a hart with Sscofpmf)
_FIELD_MAX = {"mie": ALL_INTERRUPTS | MIP_LCOFIP, "mip_sw": ALL_INTERRUPTS | MIP_LCOFIP,
              "mideleg": S_INTERRUPTS | MIP_LCOFIP,
              "menvcfg": MENVCFG_WRITABLE | ENVCFG_PMM, "senvcfg": SENVCFG_WRITABLE | ENVCFG_PMM,
              "mcounteren": 0xFFFF_FFFF,
              "scounteren": 0xFFFF_FFFF}
_FIELD_MAX["mie"] |= H_INTERRUPTS  # with H, mie also enables the VS interrupts


def _slot_property(slot: int) -> property:
    def get(self: HartState) -> int:
        return self.hart.slots[slot]

    def set_(self: HartState, value: int) -> None:
        self.hart.slots[slot] = value

    return property(get, set_)


def _slots_property(first: int, count: int, keep_x0: bool = False) -> property:
    def get(self: HartState) -> list[int]:
        return list(self.hart.slots[first:first + count])

    def set_(self: HartState, values: list[int]) -> None:
        slots = self.hart.slots
        for i, v in enumerate(values):
            slots[first + i] = 0 if keep_x0 and i == 0 else v

    return property(get, set_)


def _ps_property(name: str) -> property:
    def get(self: HartState) -> int:
        return getattr(self.hart.ps, name)

    def set_(self: HartState, value: int) -> None:
        setattr(self.hart.ps, name, value)

    return property(get, set_)


class HartState(Device):
    """``HartState(hart)``: the migratable view of one ``RiscvHart``.  ``hartid`` must
    match (a state saved for hart 1 never lands in hart 0)."""

    type_name = "riscv-hart"
    vmstate = VMState("riscv-cpu", 2, (
        VMStateField("hartid", "u32", equal=True),
        VMStateField("gprs", "u64[]"), VMStateField("fprs", "u64[]"),
        VMStateField("pc", "u64"), VMStateField("fflags", "u8", max=0x1F),
        VMStateField("frm", "u8", max=7),
        VMStateField("res_addr", "u64"), VMStateField("res_value", "u64"),
        VMStateField("priv", "u8", max=PRV_M),
        *(VMStateField(n, "u64", max=_FIELD_MAX.get(n)) for n in _CSR_FIELDS),
        VMStateField("waiting", "bool"),
        VMStateField("pmp_cfg", "u8[]", max=0x9F), VMStateField("pmp_addr", "u64[]"),
        # V: the registers (32 * VLEN bits; none without V) and the vector CSRs
        VMStateField("vregs", "u8[]"), VMStateField("vl", "u64"), VMStateField("vtype", "u64"),
        VMStateField("vstart", "u64"), VMStateField("vxrm", "u8", max=3),
        VMStateField("vxsat", "u8", max=1),
        VMStateField("mstateen", "u64[]"),
        # H: V, then HypState's registers (empty for a hart without H)
        VMStateField("hyp", "u64[]"),
        # Smmpm: mseccfg (its PMM field; version 2)
        VMStateField("mseccfg", "u64", since=2, max=ENVCFG_PMM)))

    gprs = _slots_property(rv.X0, 32, keep_x0=True)
    fprs = _slots_property(rv.F0, 32)
    pc = _slot_property(rv.PC)
    fflags = _slot_property(rv.FFLAGS)
    frm = _slot_property(rv.FRM)
    res_addr = _slot_property(rv.RES_ADDR)
    res_value = _slot_property(rv.RES_VALUE)
    mseccfg = _ps_property("mseccfg")
    def __init__(self, hart) -> None:  # a RiscvHart (not imported: it imports us)
        super().__init__(id=f"cpu{hart.hartid}")
        self.hart = hart

    @property
    def hartid(self) -> int:
        return self.hart.hartid

    @property
    def priv(self) -> int:
        return self.hart.ps.priv

    @priv.setter
    def priv(self, value: int) -> None:
        self.hart.ps.set_priv(value)  # the PRIV slot translated code reads, too

    @property
    def waiting(self) -> bool:
        return self.hart.ps.waiting

    @waiting.setter
    def waiting(self, value: bool) -> None:
        self.hart.ps.waiting = value

    @property
    def pmp_cfg(self) -> list[int]:
        return list(self.hart.pmp.cfg)

    @pmp_cfg.setter
    def pmp_cfg(self, values: list[int]) -> None:
        self.hart.pmp.cfg = list(values)

    @property
    def pmp_addr(self) -> list[int]:
        return list(self.hart.pmp.addr)

    @pmp_addr.setter
    def pmp_addr(self, values: list[int]) -> None:
        self.hart.pmp.addr = list(values)

    # -- the vector unit (target/riscv/vector_state.py) -----------------------------------
    @property
    def vregs(self) -> list[int]:
        return list(self.hart.state.vector.register_bytes())

    @vregs.setter
    def vregs(self, values: list[int]) -> None:
        self.hart.state.vector.set_register_bytes(bytes(values))

    @property
    def vtype(self) -> int:
        return self.hart.state.vector.vtype.raw

    @vtype.setter
    def vtype(self, value: int) -> None:
        vector = self.hart.state.vector
        vector.vtype = decode_vtype(value, vector.elen)

    @property
    def mstateen(self) -> list[int]:
        return list(self.hart.ps.mstateen)

    @mstateen.setter
    def mstateen(self, values: list[int]) -> None:
        if len(values) != 4:
            raise VMStateInvalid("mstateen", f"{len(values)} registers, not 4")
        self.hart.ps.mstateen = [v & MSTATEEN_WRITABLE[n] for n, v in enumerate(values)]

    @property
    def hyp(self) -> list[int]:
        ps = self.hart.ps
        if not ps.has_h:
            return []
        return [int(ps.virt), *(getattr(ps.hyp, name) for name in MIGRATED_FIELDS)]

    @hyp.setter
    def hyp(self, values: list[int]) -> None:
        ps = self.hart.ps
        if len(values) != (1 + len(MIGRATED_FIELDS) if ps.has_h else 0):
            raise VMStateInvalid("hyp", f"{len(values)} H registers: this hart's H differs")
        if values:
            ps.virt = bool(values[0])
            for name, value in zip(MIGRATED_FIELDS, values[1:], strict=True):
                setattr(ps.hyp, name, value)

    def vmstate_check(self, state: Mapping[str, object]) -> None:
        if state.get("priv") not in (PRV_U, PRV_S, PRV_M):
            raise VMStateInvalid("priv", f"privilege level {state.get('priv')} does not exist")
        satp = state.get("satp", 0)
        assert isinstance(satp, int)
        if satp >> 60 != SATP_MODE_BARE and satp >> 60 not in SATP_LEVELS:
            raise VMStateInvalid("satp", f"translation mode {satp >> 60} is not supported")
        vregs = state.get("vregs", [])
        assert isinstance(vregs, list)
        if len(vregs) != N_VREGS * self.hart.state.vector.vlenb:
            raise VMStateInvalid("vregs", f"{len(vregs)} bytes of vector registers: this "
                                 "hart's VLEN differs (or it has no V)")

    def vmstate_post_load(self) -> None:
        hart = self.hart
        ps = hart.ps
        hart.pmp._compile()  # the rules the checks use come from cfg/addr
        ps.set_stimecmp(ps.stimecmp)  # re-arm on this host's clock (mtime is loaded)
        if ps.has_h:
            ps.set_vstimecmp(ps.hyp.vstimecmp)
            ps.sync_address_space()  # V=1 (or MPRV+MPV) names the V=1 address space
        hart.mmu.switch()  # satp may name another address space
        hart.tlb_flush_all()
        hart.flush_jump_cache()
        ps.kick()  # re-derive block flags and pending interrupts before the next block


for _name in _CSR_FIELDS:
    setattr(HartState, _name, _ps_property(_name))


# The counters live in the hart's Pmu (target/riscv/pmu.py): mcycle travels as its
# offset from time (what the field meant before the Pmu), mcountinhibit as it is.  The
# other counters and the mhpmevents do not travel (yet).
def _get_cycle_offset(self: HartState) -> int:
    return (self.hart.pmu.read(0) - self.hart.ps.now()) & 0xFFFF_FFFF_FFFF_FFFF


def _set_cycle_offset(self: HartState, value: int) -> None:
    self.hart.pmu.write(0, value + self.hart.ps.now())


def _set_mcountinhibit(self: HartState, value: int) -> None:
    self.hart.pmu.write_inhibit(value)
    self.hart.ps.mcountinhibit = self.hart.pmu.inhibit


HartState.cycle_offset = property(_get_cycle_offset, _set_cycle_offset)
HartState.mcountinhibit = property(lambda self: self.hart.pmu.inhibit, _set_mcountinhibit)


def _vector_property(name: str) -> property:
    def get(self: HartState) -> int:
        return getattr(self.hart.state.vector, name)

    def set_(self: HartState, value: int) -> None:
        setattr(self.hart.state.vector, name, value)

    return property(get, set_)


for _name in ("vl", "vstart", "vxrm", "vxsat"):
    setattr(HartState, _name, _vector_property(_name))

__all__ = ["HartState"]
