"""An x86-64 KVM vCPU's state as the migration layer sees it: one ``VMState`` declaration.

The vCPU's state lives in the kernel, so every field is a property: reading it is a
KVM_GET_* ioctl (the vCPU is paused: savevm and stop-and-copy park the vCPU threads
first), writing it stages the value.  ``vmstate_post_load`` then hands the staged
state to KVM in the order KVM needs:

  sregs        first: CR0/CR4/EFER decide how the rest is interpreted, and
               APIC_BASE (in sregs) must be set before the LAPIC's registers
  sregs2       where KVM has KVM_CAP_SREGS2: the same registers with the PAE
               PDPTRs, which SET_SREGS alone would reload from guest memory (QEMU
               uses sregs2 the same way); a host without it loads sregs only
  regs         general registers, RIP, RFLAGS
  xsave / fpu  the FPU/SSE/AVX state (XSAVE layout where KVM has KVM_CAP_XSAVE, at
               KVM_CAP_XSAVE2's size where it says one (AMX);
               the host reads and writes it even where the guest cannot run XSAVE)
  xcrs         XCR0
  MSRs         syscall, SYSENTER, PAT, TSC, kvmclock ... (below), before the LAPIC
  mp_state     runnable, halted, waiting for INIT/SIPI
  lapic        the local APIC's register page
  TSC_DEADLINE after the LAPIC, whose timer mode it arms
  debugregs
  events       last: pending exception/interrupt/NMI/SIPI, interrupt shadow; any
               earlier write could disturb them

The kernel's struct layouts (pemu/accel/kvm/abi.py, checked against <linux/kvm.h>) are
the wire format of the opaque fields; the MSRs are named fields.  What is not state
here: the CPUID table (configuration, the same command line gives the same table), the
in-kernel PIC/IOAPIC/PIT and kvmclock (per VM: pemu/hw/x86/kvm_chips.py).
"""

from __future__ import annotations

import ctypes
from collections.abc import Mapping

from pemu.accel.kvm import abi
from pemu.hw.core import Device, VMState, VMStateField, VMStateInvalid

# (field name, MSR index): the MSRs that matter for a guest to continue, read and
# written when this host's KVM lists them (KVM_GET_MSR_INDEX_LIST).  EFER, FS/GS base
# and APIC_BASE travel in sregs.
MSRS: tuple[tuple[str, int], ...] = (
    ("msr_tsc", 0x10), ("msr_tsc_adjust", 0x3B),
    ("msr_sysenter_cs", 0x174), ("msr_sysenter_esp", 0x175), ("msr_sysenter_eip", 0x176),
    ("msr_misc_enable", 0x1A0), ("msr_pat", 0x277), ("msr_mtrr_def_type", 0x2FF),
    ("msr_star", 0xC000_0081), ("msr_lstar", 0xC000_0082), ("msr_cstar", 0xC000_0083),
    ("msr_sfmask", 0xC000_0084), ("msr_kernel_gs_base", 0xC000_0102),
    ("msr_tsc_aux", 0xC000_0103),
    # kvmclock and the other paravirtual MSRs (the guest set them up to find its clock)
    ("msr_kvm_wall_clock", 0x11), ("msr_kvm_system_time", 0x12),
    ("msr_kvm_wall_clock_new", 0x4B56_4D00), ("msr_kvm_system_time_new", 0x4B56_4D01),
    ("msr_kvm_async_pf_en", 0x4B56_4D02), ("msr_kvm_steal_time", 0x4B56_4D03),
    ("msr_kvm_pv_eoi_en", 0x4B56_4D04),
    ("msr_tsc_deadline", 0x6E0),  # applied after the LAPIC (see the module docstring)
)
MSR_TSC_DEADLINE = 0x6E0
MP_STATE_MAX = 8  # KVM_MP_STATE_AP_RESET_HOLD, the highest defined
TSC_TOLERANCE_PPM = 250  # what KVM itself lets pass without scaling

# (field, struct, GET ioctl, SET ioctl): the opaque kernel structs, in load order
_STRUCTS = {
    "sregs": (abi.KvmSregs, abi.KVM_GET_SREGS, abi.KVM_SET_SREGS),
    "sregs2": (abi.KvmSregs2, abi.KVM_GET_SREGS2, abi.KVM_SET_SREGS2),
    "regs": (abi.KvmRegs, abi.KVM_GET_REGS, abi.KVM_SET_REGS),
    "fpu": (abi.KvmFpu, abi.KVM_GET_FPU, abi.KVM_SET_FPU),
    "xcrs": (abi.KvmXcrs, abi.KVM_GET_XCRS, abi.KVM_SET_XCRS),
    "lapic": (abi.KvmLapicState, abi.KVM_GET_LAPIC, abi.KVM_SET_LAPIC),
    "debugregs": (abi.KvmDebugregs, abi.KVM_GET_DEBUGREGS, abi.KVM_SET_DEBUGREGS),
    "events": (abi.KvmVcpuEvents, abi.KVM_GET_VCPU_EVENTS, abi.KVM_SET_VCPU_EVENTS),
}
# structs a KVM may lack (its capability): saved empty, loaded only where present
_OPTIONAL = {"xsave": abi.KVM_CAP_XSAVE, "xcrs": abi.KVM_CAP_XCRS,
             "debugregs": abi.KVM_CAP_DEBUGREGS, "events": abi.KVM_CAP_VCPU_EVENTS,
             "sregs2": abi.KVM_CAP_SREGS2}
# optional structs whose absence on the loading host loses nothing that matters:
# sregs carries the same registers (the PDPTRs are then reloaded from guest memory)
_SKIPPABLE = {"sregs2"}


XSAVE_LEGACY_SIZE = ctypes.sizeof(abi.KvmXsave)
XSAVE_MAX = 1 << 16  # far above today's largest (AMX tiles: about 11 KiB)


def _struct_field(name: str) -> VMStateField:
    return VMStateField(name, "bytes", max=ctypes.sizeof(_STRUCTS[name][0]))


class X86VCPUState(Device):
    """``X86VCPUState(vcpu, supported_msrs)``: the migratable view of one ``KVMVCPU``.
    ``cpu_index`` must match: a state saved for vCPU 1 never lands in vCPU 0."""

    type_name = "x86-kvm-cpu"
    vmstate = VMState("x86-cpu", 2, (
        VMStateField("cpu_index", "u32", equal=True),
        VMStateField("tsc_khz", "u32"),
        *(_struct_field(n) for n in ("sregs", "regs", "fpu")),
        VMStateField("xsave", "bytes", max=XSAVE_MAX),  # the host's size: see _xsave_size
        _struct_field("xcrs"),
        VMStateField("msrs_present", "u64"),  # bit n: MSRS[n] was read on the source
        *(VMStateField(name, "u64") for name, _ in MSRS),
        VMStateField("mp_state", "u32", max=MP_STATE_MAX),
        *(_struct_field(n) for n in ("lapic", "debugregs", "events")),
        VMStateField("sregs2", "bytes", since=2, max=ctypes.sizeof(abi.KvmSregs2)),
    ))

    def __init__(self, vcpu, supported_msrs: set[int]) -> None:  # vcpu: KVMVCPU
        super().__init__(id=f"cpu{vcpu.index}")
        self.vcpu = vcpu
        self._has = {name: bool(vcpu.vm.check_extension(cap))
                     for name, cap in _OPTIONAL.items()}
        # KVM_CAP_XSAVE2 (Linux 5.17) gives the size of the VM's XSAVE area, larger than
        # struct kvm_xsave once the CPU has AMX; KVM_SET_XSAVE then reads that many bytes
        self._xsave2 = vcpu.vm.check_extension(abi.KVM_CAP_XSAVE2)
        self._xsave_size = max(self._xsave2, XSAVE_LEGACY_SIZE)
        self._msr_bits = {index: bit for bit, (_, index) in enumerate(MSRS)
                          if index in supported_msrs}
        self._staged: dict[str, object] = {}

    @property
    def cpu_index(self) -> int:
        return self.vcpu.index

    # -- reading: straight from KVM (the vCPU is parked) ---------------------------------
    def _read_struct(self, name: str) -> bytes:
        if not self._has.get(name, True):
            return b""
        struct, get, _ = _STRUCTS[name]
        return bytes(self.vcpu.get_state(struct, get, f"GET_{name.upper()}"))

    @property
    def xsave(self) -> bytes:
        if not self._has["xsave"]:
            return b""
        get = abi.KVM_GET_XSAVE2 if self._xsave2 else abi.KVM_GET_XSAVE
        return bytes(self.vcpu.get_state(ctypes.c_uint8 * self._xsave_size, get,
                                         "GET_XSAVE"))

    @xsave.setter
    def xsave(self, value: bytes) -> None:
        self._staged["xsave"] = value

    @property
    def msrs_present(self) -> int:
        return sum(1 << bit for bit in self._msr_bits.values())

    @msrs_present.setter
    def msrs_present(self, value: int) -> None:
        self._staged["msrs_present"] = value

    @property
    def tsc_khz(self) -> int:
        return self.vcpu.get_tsc_khz()

    @tsc_khz.setter
    def tsc_khz(self, value: int) -> None:
        self._staged["tsc_khz"] = value

    @property
    def mp_state(self) -> int:
        return self.vcpu.get_mp_state()

    @mp_state.setter
    def mp_state(self, value: int) -> None:
        self._staged["mp_state"] = value

    # -- checks before anything is applied --------------------------------------------------
    def vmstate_check(self, state: Mapping[str, object]) -> None:
        for name, (struct, _, _) in _STRUCTS.items():
            data = state.get(name, b"")
            assert isinstance(data, bytes)
            size = ctypes.sizeof(struct)
            if len(data) not in (0, size) or (not data and name not in _OPTIONAL
                                              and name != "fpu"):
                raise VMStateInvalid(name, f"{len(data)} bytes, KVM's struct has {size}")
            if data and not self._has.get(name, True) and name not in _SKIPPABLE:
                raise VMStateInvalid(name, "this host's KVM cannot load it (capability "
                                           "missing)")
        xsave = state.get("xsave", b"")
        assert isinstance(xsave, bytes)
        if xsave and not self._has["xsave"]:
            raise VMStateInvalid("xsave", "this host's KVM has no KVM_CAP_XSAVE")
        if xsave and not XSAVE_LEGACY_SIZE <= len(xsave) <= self._xsave_size:
            raise VMStateInvalid("xsave", f"an XSAVE area of {len(xsave)} bytes; this "
                                          f"host's KVM holds {self._xsave_size}")
        if not xsave and not state.get("fpu"):
            raise VMStateInvalid("fpu", "neither an XSAVE area nor an FPU state")
        present = state.get("msrs_present", 0)
        assert isinstance(present, int)
        for bit, (name, index) in enumerate(MSRS):
            if present >> bit & 1 and index not in self._msr_bits and state.get(name):
                raise VMStateInvalid(name, f"MSR 0x{index:x} is set in the guest, but this "
                                           "host's KVM does not support it")
        self._check_tsc(state.get("tsc_khz", 0))

    def _check_tsc(self, khz: object) -> None:
        assert isinstance(khz, int)
        ours = self.vcpu.get_tsc_khz()
        if not khz or not ours or abs(khz - ours) * 1_000_000 <= ours * TSC_TOLERANCE_PPM:
            return
        if not self.vcpu.vm.check_extension(abi.KVM_CAP_TSC_CONTROL):
            raise VMStateInvalid("tsc_khz", f"the guest's TSC runs at {khz} kHz, this host's "
                                            f"at {ours} kHz, and its KVM cannot scale it "
                                            "(no KVM_CAP_TSC_CONTROL)")

    # -- applying, in KVM's order ------------------------------------------------------------
    def vmstate_post_load(self) -> None:
        staged, self._staged = self._staged, {}
        if not staged:
            return
        vcpu = self.vcpu
        khz = staged.get("tsc_khz", 0)
        if khz and khz != vcpu.get_tsc_khz():
            vcpu.set_tsc_khz(khz)  # checked: within tolerance, or KVM can scale
        for name in ("sregs", "sregs2", "regs"):
            self._write_struct(name, staged)
        if staged.get("xsave") and self._has["xsave"]:
            self._write_xsave(staged["xsave"])  # type: ignore[arg-type]
        else:
            self._write_struct("fpu", staged)
        self._write_struct("xcrs", staged)
        msrs = self._staged_msrs(staged)
        deadline = msrs.pop(MSR_TSC_DEADLINE, None)
        self._write_msrs(msrs)
        if "mp_state" in staged:
            vcpu.set_mp_state(int(staged["mp_state"]))  # type: ignore[call-overload]
        self._write_struct("lapic", staged)
        if deadline is not None:
            self._write_msrs({MSR_TSC_DEADLINE: deadline})
        self._write_struct("debugregs", staged)
        self._write_events(staged)

    def _write_struct(self, name: str, staged: Mapping[str, object]) -> None:
        data = staged.get(name)
        if not data or not self._has.get(name, True):
            return
        struct, _, set_ = _STRUCTS[name]
        self.vcpu.set_state(set_, struct.from_buffer_copy(data), f"SET_{name.upper()}")

    def _write_xsave(self, data: bytes) -> None:
        # a smaller area (a source without AMX) is padded with zeros: the XSAVE
        # header's XSTATE_BV says which components it holds
        area = (ctypes.c_uint8 * self._xsave_size)()
        ctypes.memmove(area, data, len(data))
        self.vcpu.set_state(abi.KVM_SET_XSAVE, area, "SET_XSAVE")

    def _write_events(self, staged: Mapping[str, object]) -> None:
        data = staged.get("events")
        if not data or not self._has["events"]:
            return
        events = abi.KvmVcpuEvents.from_buffer_copy(data)  # type: ignore[arg-type]
        # GET reports which parts it filled; the SIPI vector is always meaningful
        events.flags |= abi.KVM_VCPUEVENT_VALID_SIPI_VECTOR
        self.vcpu.set_state(abi.KVM_SET_VCPU_EVENTS, events, "SET_VCPU_EVENTS")

    def _staged_msrs(self, staged: Mapping[str, object]) -> dict[int, int]:
        present = staged.get("msrs_present", 0)
        assert isinstance(present, int)
        return {index: int(staged[name])  # type: ignore[call-overload]
                for bit, (name, index) in enumerate(MSRS)
                if present >> bit & 1 and index in self._msr_bits and name in staged}

    def _write_msrs(self, msrs: dict[int, int]) -> None:
        if not msrs:
            return
        done = self.vcpu.set_msrs(msrs)
        if done != len(msrs):
            index = list(msrs)[done]
            raise ValueError(f"KVM refused MSR 0x{index:x} = 0x{msrs[index]:x}")


def _struct_property(name: str) -> property:
    def get(self: X86VCPUState) -> bytes:
        return self._read_struct(name)

    def set_(self: X86VCPUState, value: bytes) -> None:
        self._staged[name] = value

    return property(get, set_)


def _msr_property(name: str, index: int) -> property:
    def get(self: X86VCPUState) -> int:
        if index not in self._msr_bits:
            return 0
        return self.vcpu.get_msrs([index]).get(index, 0)

    def set_(self: X86VCPUState, value: int) -> None:
        self._staged[name] = value

    return property(get, set_)


for _name in _STRUCTS:
    setattr(X86VCPUState, _name, _struct_property(_name))
for _name, _index in MSRS:
    setattr(X86VCPUState, _name, _msr_property(_name, _index))

__all__ = ["MSRS", "X86VCPUState"]
