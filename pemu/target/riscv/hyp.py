"""The hypervisor extension's state and rules (privileged spec 1.12, chapter 8).

A hart with H (``-cpu rv64,h=true``) has a virtualization mode V besides the
privilege: V=0 with S is HS-mode (the hypervisor), V=1 with S or U is VS/VU-mode (a
guest).  ``HypState`` holds the hypervisor CSRs and the VS copies of the supervisor
CSRs that V=1 code sees in place of the real ones (csr_hyp.py redirects them).

PrivState (priv.py) asks this module where a trap goes (M, HS or VS), what xRET
does to V, and which interrupts are pending for VS; the two-stage walk is
mmu_hyp.py, the instructions (hfence, hlv/hsv) insn_hyp.py.
"""

from __future__ import annotations

from pemu.target.riscv.exceptions import RiscvTrap

# hstatus fields
HSTATUS_VSBE = 1 << 5
HSTATUS_GVA = 1 << 6
HSTATUS_SPV = 1 << 7
HSTATUS_SPVP = 1 << 8
HSTATUS_HU = 1 << 9
HSTATUS_VGEIN = 0x3F << 12
HSTATUS_VTVM = 1 << 20
HSTATUS_VTW = 1 << 21
HSTATUS_VTSR = 1 << 22
HSTATUS_VSXL = 2 << 32  # VS-mode XLEN: 64, read-only
HSTATUS_VGEIN_SHIFT = 12
# VGEIN is writable only up to GEILEN (the board's IMSIC guest files, -M virt,aia-guests=N)
HSTATUS_WRITABLE = (HSTATUS_GVA | HSTATUS_SPV | HSTATUS_SPVP | HSTATUS_HU | HSTATUS_VTVM
                    | HSTATUS_VTW | HSTATUS_VTSR)

# mstatus fields H adds
MSTATUS_GVA = 1 << 38
MSTATUS_MPV = 1 << 39

# the VS-level interrupts (mip/mie bits) and the guest external interrupt
IRQ_VS_SOFT, IRQ_VS_TIMER, IRQ_VS_EXT, IRQ_S_GEXT = 2, 6, 10, 12
MIP_VSSIP, MIP_VSTIP, MIP_VSEIP = 1 << IRQ_VS_SOFT, 1 << IRQ_VS_TIMER, 1 << IRQ_VS_EXT
MIP_SGEIP = 1 << IRQ_S_GEXT
VS_INTERRUPTS = MIP_VSSIP | MIP_VSTIP | MIP_VSEIP
H_INTERRUPTS = VS_INTERRUPTS | MIP_SGEIP
# mideleg's bits for these are read-only one: M never takes them
MIDELEG_FORCED = H_INTERRUPTS
# after the S ones in the priority order (spec 8.4.2): SGEI, VSEI, VSSI, VSTI
H_IRQ_PRIORITY = (IRQ_S_GEXT, IRQ_VS_EXT, IRQ_VS_SOFT, IRQ_VS_TIMER)

# exception causes H adds
ECALL_VS = 10
INSN_GUEST_PAGE_FAULT = 20
LOAD_GUEST_PAGE_FAULT = 21
VIRTUAL_INSN = 22
STORE_GUEST_PAGE_FAULT = 23
# hedeleg: what HS may hand to VS (not ecall from HS/VS/M, nor the guest-page faults
# and virtual instructions, which only HS can handle)
HEDELEG_WRITABLE = 0xB1FF
# medeleg bits H makes writable: ecall from VS, the guest-page faults, virtual insn
MEDELEG_H = (1 << ECALL_VS) | (0xF << INSN_GUEST_PAGE_FAULT)
# traps whose tval is a faulting address: with V=1 (or hlv/hsv) it is a guest virtual
# address, which hstatus.GVA/mstatus.GVA record
_ADDRESS_CAUSES = frozenset({0, 1, 4, 5, 6, 7, 12, 13, 15, 20, 21, 23})
GUEST_PAGE_FAULT = {12: INSN_GUEST_PAGE_FAULT, 13: LOAD_GUEST_PAGE_FAULT,
                    15: STORE_GUEST_PAGE_FAULT}

HGATP_MODE_SHIFT = 60
HGATP_VMID_SHIFT = 44
VMIDLEN = 14  # as QEMU's: KVM gives each VM its own and fences less
VMID_MASK = (1 << VMIDLEN) - 1
HGATP_PPN_MASK = (1 << 44) - 1
HENVCFG_WRITABLE = 0xF1 | (1 << 61) | (1 << 62) | (1 << 63)  # FIOM, CB*, ADUE, PBMTE, STCE
HCOUNTEREN_MASK = 0xFFFF_FFFF
MASK64 = 0xFFFF_FFFF_FFFF_FFFF


class GuestTrap(RiscvTrap):
    """A trap that carries what H's trap CSRs record: the guest physical address of a
    guest-page fault (htval/mtval2 get it shifted right by 2), and whether tval is a
    guest virtual address although V=0 (an hlv/hsv access)."""

    def __init__(self, cause: int, tval: int = 0, gpa: int = 0, gva: bool = False) -> None:
        super().__init__(cause, tval)
        self.gpa = gpa
        self.gva = gva


class HypState:
    """The H CSRs of one hart and the VS-level registers."""

    def __init__(self) -> None:
        self.geilen = 0  # how many guest interrupt files the hart has (set by the board)
        # hgeip: the guest files' output lines (bit g: file g), kept by the files
        # themselves from any thread (guest_file_sink); reset leaves the lines alone
        self.hgeip = 0
        self.reset()

    def reset(self) -> None:
        self.hstatus = HSTATUS_VSXL
        self.hedeleg = 0
        self.hideleg = 0
        self.hvip = 0
        self.hcounteren = 0
        self.htval = 0
        self.htinst = 0
        self.hgatp = 0
        self.henvcfg = 0
        self.htimedelta = 0
        self.mtval2 = 0
        self.mtinst = 0
        # the VS copies of the S registers (vsstatus keeps sstatus's layout)
        self.vsstatus = 2 << 32  # UXL: 64
        self.vstvec = 0
        self.vsscratch = 0
        self.vsepc = 0
        self.vscause = 0
        self.vstval = 0
        self.vsatp = 0
        self.vstimecmp = MASK64
        # Smstateen's hypervisor level: what VS may use of sstateenN/senvcfg
        self.hstateen0 = self.hstateen1 = self.hstateen2 = self.hstateen3 = 0
        # AIA (Ssaia with H): guest external interrupts and the VS interrupt controls
        self.hgeie = 0
        self.hvictl = 0
        self.hviprio1 = self.hviprio2 = 0
        self.vsiselect = 0

    @property
    def vgein(self) -> int:
        return self.hstatus >> HSTATUS_VGEIN_SHIFT & 0x3F

    def guest_external_pending(self) -> tuple[bool, bool]:
        """(SGEIP, the VSEIP that hstatus.VGEIN selects) as mip shows them."""
        hgeip = self.hgeip
        vgein = self.vgein
        return bool(hgeip & self.hgeie), bool(vgein and hgeip >> vgein & 1)


# HypState's registers in the order a migration stream carries them (hart_vmstate.py)
MIGRATED_FIELDS = ("hstatus", "hedeleg", "hideleg", "hvip", "hcounteren", "htval", "htinst",
                   "hgatp", "henvcfg", "htimedelta", "mtval2", "mtinst", "vsstatus",
                   "vstvec", "vsscratch", "vsepc", "vscause", "vstval", "vsatp", "vstimecmp",
                   "hstateen0", "hstateen1", "hstateen2", "hstateen3", "hgeie", "hvictl",
                   "hviprio1", "hviprio2", "vsiselect")


def gva_for(cause: int, virt: bool, trap: RiscvTrap | None) -> bool:
    """Whether a trap's tval is a guest virtual address (hstatus/mstatus.GVA)."""
    if cause not in _ADDRESS_CAUSES:
        return False
    return virt or bool(trap is not None and getattr(trap, "gva", False))


def trap_gpa(trap: RiscvTrap | None) -> int:
    """The guest physical address a guest-page fault recorded (0 for other traps)."""
    return getattr(trap, "gpa", 0) if trap is not None else 0


def guest_file_sink(ps, guest: int):  # ps: PrivState of a hart with H
    """The line of guest interrupt file ``guest`` (1..GEILEN): hgeip's bit, which
    feeds SGEIP and, through hstatus.VGEIN, VSEIP."""
    bit = 1 << guest

    def set_level(level: bool) -> None:
        with ps.lock:
            hyp = ps.hyp
            hyp.hgeip = hyp.hgeip | bit if level else hyp.hgeip & ~bit
        if level:
            ps.kick()

    return set_level


__all__ = ["GuestTrap", "HypState", "VIRTUAL_INSN", "guest_file_sink", "gva_for",
           "trap_gpa"]
