"""The Linux KVM user-space ABI: ctypes mirrors of linux/kvm.h (x86-64) and ioctl numbers.

Struct layouts and numbers are facts of the kernel ABI.  The ioctl numbers are derived
here from the struct sizes with the kernel's _IO/_IOR/_IOW/_IOWR encoding, so a layout
mistake shows up as a wrong number (tests/kvm/test_abi.py checks both against the host's
<linux/kvm.h> compiled with gcc).
"""

from __future__ import annotations

import ctypes

u8, u16, u32 = ctypes.c_uint8, ctypes.c_uint16, ctypes.c_uint32
u64, s32 = ctypes.c_uint64, ctypes.c_int32

KVMIO = 0xAE
_NRBITS, _TYPEBITS, _SIZEBITS = 8, 8, 14
_NONE, _WRITE, _READ = 0, 1, 2


def _ioc(direction: int, nr: int, size: int) -> int:
    return (direction << (_NRBITS + _TYPEBITS + _SIZEBITS)) | (size << (_NRBITS + _TYPEBITS)) | (
        KVMIO << _NRBITS) | nr


def _io(nr: int) -> int:
    return _ioc(_NONE, nr, 0)


def _ior(nr: int, t: type) -> int:
    return _ioc(_READ, nr, ctypes.sizeof(t))


def _iow(nr: int, t: type) -> int:
    return _ioc(_WRITE, nr, ctypes.sizeof(t))


def _iowr(nr: int, t: type) -> int:
    return _ioc(_READ | _WRITE, nr, ctypes.sizeof(t))


# -- registers -----------------------------------------------------------------------------
class KvmRegs(ctypes.Structure):
    _fields_ = [(n, u64) for n in (
        "rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rsp", "rbp",
        "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15", "rip", "rflags")]


class KvmSegment(ctypes.Structure):
    _fields_ = [
        ("base", u64), ("limit", u32), ("selector", u16), ("type", u8), ("present", u8),
        ("dpl", u8), ("db", u8), ("s", u8), ("l", u8), ("g", u8), ("avl", u8),
        ("unusable", u8), ("padding", u8),
    ]


class KvmDtable(ctypes.Structure):
    _fields_ = [("base", u64), ("limit", u16), ("padding", u16 * 3)]


class KvmSregs(ctypes.Structure):
    _fields_ = [
        ("cs", KvmSegment), ("ds", KvmSegment), ("es", KvmSegment), ("fs", KvmSegment),
        ("gs", KvmSegment), ("ss", KvmSegment), ("tr", KvmSegment), ("ldt", KvmSegment),
        ("gdt", KvmDtable), ("idt", KvmDtable),
        ("cr0", u64), ("cr2", u64), ("cr3", u64), ("cr4", u64), ("cr8", u64),
        ("efer", u64), ("apic_base", u64), ("interrupt_bitmap", u64 * 4),
    ]


class KvmFpu(ctypes.Structure):
    _fields_ = [
        ("fpr", (u8 * 16) * 8), ("fcw", u16), ("fsw", u16), ("ftwx", u8), ("pad1", u8),
        ("last_opcode", u16), ("last_ip", u64), ("last_dp", u64), ("xmm", (u8 * 16) * 16),
        ("mxcsr", u32), ("pad2", u32),
    ]


class KvmLapicState(ctypes.Structure):
    _fields_ = [("regs", u8 * 1024)]


class KvmMsrEntry(ctypes.Structure):
    _fields_ = [("index", u32), ("reserved", u32), ("data", u64)]


class KvmMsrsHeader(ctypes.Structure):
    _fields_ = [("nmsrs", u32), ("pad", u32)]


class KvmMsrListHeader(ctypes.Structure):
    _fields_ = [("nmsrs", u32)]


class KvmCpuidEntry2(ctypes.Structure):
    _fields_ = [
        ("function", u32), ("index", u32), ("flags", u32),
        ("eax", u32), ("ebx", u32), ("ecx", u32), ("edx", u32), ("padding", u32 * 3),
    ]


class KvmCpuid2Header(ctypes.Structure):
    _fields_ = [("nent", u32), ("padding", u32)]


def msrs_struct(n: int) -> type[ctypes.Structure]:
    """struct kvm_msrs with room for n entries."""
    return type(f"KvmMsrs{n}", (ctypes.Structure,),
                {"_fields_": [("nmsrs", u32), ("pad", u32), ("entries", KvmMsrEntry * n)]})


def msr_list_struct(n: int) -> type[ctypes.Structure]:
    return type(f"KvmMsrList{n}", (ctypes.Structure,),
                {"_fields_": [("nmsrs", u32), ("indices", u32 * n)]})


def cpuid2_struct(n: int) -> type[ctypes.Structure]:
    """struct kvm_cpuid2 with room for n entries."""
    return type(f"KvmCpuid2_{n}", (ctypes.Structure,),
                {"_fields_": [("nent", u32), ("padding", u32), ("entries", KvmCpuidEntry2 * n)]})


KVM_CPUID_FLAG_SIGNIFCANT_INDEX = 1


class KvmMpState(ctypes.Structure):
    _fields_ = [("mp_state", u32)]


KVM_MP_STATE_RUNNABLE = 0
KVM_MP_STATE_UNINITIALIZED = 1
KVM_MP_STATE_HALTED = 3


class KvmTranslation(ctypes.Structure):
    _fields_ = [("linear_address", u64), ("physical_address", u64), ("valid", u8),
                ("writeable", u8), ("usermode", u8), ("pad", u8 * 5)]


class KvmGuestDebug(ctypes.Structure):
    """KVM_SET_GUEST_DEBUG: control flags and the debug registers DR0-DR7 to load."""

    _fields_ = [("control", u32), ("pad", u32), ("debugreg", u64 * 8)]


KVM_GUESTDBG_ENABLE = 0x1
KVM_GUESTDBG_SINGLESTEP = 0x2
KVM_GUESTDBG_USE_SW_BP = 0x10000
KVM_GUESTDBG_USE_HW_BP = 0x20000

# -- VM-level structs ----------------------------------------------------------------------
class KvmUserspaceMemoryRegion(ctypes.Structure):
    _fields_ = [("slot", u32), ("flags", u32), ("guest_phys_addr", u64),
                ("memory_size", u64), ("userspace_addr", u64)]


KVM_MEM_READONLY = 1 << 1


class KvmIrqLevel(ctypes.Structure):
    _fields_ = [("irq", u32), ("level", u32)]


class KvmIrqfd(ctypes.Structure):
    _fields_ = [("fd", u32), ("gsi", u32), ("flags", u32), ("resamplefd", u32), ("pad", u8 * 16)]


KVM_IRQFD_FLAG_DEASSIGN = 1 << 0
KVM_IRQFD_FLAG_RESAMPLE = 1 << 1


class KvmIoeventfd(ctypes.Structure):
    _fields_ = [("datamatch", u64), ("addr", u64), ("len", u32), ("fd", s32),
                ("flags", u32), ("pad", u8 * 36)]


KVM_IOEVENTFD_FLAG_DATAMATCH = 1 << 0
KVM_IOEVENTFD_FLAG_PIO = 1 << 1
KVM_IOEVENTFD_FLAG_DEASSIGN = 1 << 2


class KvmPitConfig(ctypes.Structure):
    _fields_ = [("flags", u32), ("pad", u32 * 15)]


KVM_PIT_SPEAKER_DUMMY = 1


class KvmIrqRoutingIrqchip(ctypes.Structure):
    _fields_ = [("irqchip", u32), ("pin", u32)]


class KvmIrqRoutingMsi(ctypes.Structure):
    _fields_ = [("address_lo", u32), ("address_hi", u32), ("data", u32), ("pad", u32)]


class _KvmIrqRoutingUnion(ctypes.Union):
    _fields_ = [("irqchip", KvmIrqRoutingIrqchip), ("msi", KvmIrqRoutingMsi), ("pad", u32 * 8)]


class KvmIrqRoutingEntry(ctypes.Structure):
    _fields_ = [("gsi", u32), ("type", u32), ("flags", u32), ("pad", u32),
                ("u", _KvmIrqRoutingUnion)]


def irq_routing_struct(n: int) -> type[ctypes.Structure]:
    return type(f"KvmIrqRouting{n}", (ctypes.Structure,),
                {"_fields_": [("nr", u32), ("flags", u32), ("entries", KvmIrqRoutingEntry * n)]})


class KvmIrqRoutingHeader(ctypes.Structure):
    _fields_ = [("nr", u32), ("flags", u32)]


KVM_IRQ_ROUTING_IRQCHIP = 1
KVM_IRQ_ROUTING_MSI = 2
KVM_IRQCHIP_PIC_MASTER = 0
KVM_IRQCHIP_PIC_SLAVE = 1
KVM_IRQCHIP_IOAPIC = 2


class KvmEnableCap(ctypes.Structure):
    _fields_ = [("cap", u32), ("flags", u32), ("args", u64 * 4), ("pad", u8 * 64)]


# -- struct kvm_run (the vCPU's shared page) ------------------------------------------------
class KvmRunIo(ctypes.Structure):
    _fields_ = [("direction", u8), ("size", u8), ("port", u16), ("count", u32),
                ("data_offset", u64)]


KVM_EXIT_IO_IN = 0
KVM_EXIT_IO_OUT = 1


class KvmRunMmio(ctypes.Structure):
    _fields_ = [("phys_addr", u64), ("data", u8 * 8), ("len", u32), ("is_write", u8)]


class KvmRunInternal(ctypes.Structure):
    _fields_ = [("suberror", u32), ("ndata", u32), ("data", u64 * 16)]


class KvmRunEmulationFailure(ctypes.Structure):
    _fields_ = [("suberror", u32), ("ndata", u32), ("flags", u64), ("insn_size", u8),
                ("insn_bytes", u8 * 15)]


class KvmRunSystemEvent(ctypes.Structure):
    _fields_ = [("type", u32), ("ndata", u32), ("data", u64 * 16)]


class KvmRunFailEntry(ctypes.Structure):
    _fields_ = [("hardware_entry_failure_reason", u64), ("cpu", u32)]


class KvmDebugExitArch(ctypes.Structure):
    """The x86 part of a KVM_EXIT_DEBUG: which exception (1 = #DB, 3 = #BP), where, DR6/7."""

    _fields_ = [("exception", u32), ("pad", u32), ("pc", u64), ("dr6", u64), ("dr7", u64)]


class KvmRunHw(ctypes.Structure):
    _fields_ = [("hardware_exit_reason", u64)]


class _KvmRunExit(ctypes.Union):
    _fields_ = [
        ("hw", KvmRunHw), ("fail_entry", KvmRunFailEntry), ("io", KvmRunIo),
        ("mmio", KvmRunMmio), ("internal", KvmRunInternal),
        ("emulation_failure", KvmRunEmulationFailure), ("system_event", KvmRunSystemEvent),
        ("debug", KvmDebugExitArch),
        ("padding", ctypes.c_char * 256),
    ]


class KvmRun(ctypes.Structure):
    _anonymous_ = ("exit",)
    _fields_ = [
        ("request_interrupt_window", u8), ("immediate_exit", u8), ("padding1", u8 * 6),
        ("exit_reason", u32), ("ready_for_interrupt_injection", u8), ("if_flag", u8),
        ("flags", u16), ("cr8", u64), ("apic_base", u64), ("exit", _KvmRunExit),
        ("kvm_valid_regs", u64), ("kvm_dirty_regs", u64),
    ]


KVM_INTERNAL_ERROR_EMULATION = 1
KVM_INTERNAL_ERROR_SIMUL_EX = 2
KVM_INTERNAL_ERROR_DELIVERY_EV = 3
KVM_INTERNAL_ERROR_UNEXPECTED_EXIT_REASON = 4
KVM_INTERNAL_ERROR_EMULATION_FLAG_INSTRUCTION_BYTES = 1

KVM_SYSTEM_EVENT_SHUTDOWN = 1
KVM_SYSTEM_EVENT_RESET = 2
KVM_SYSTEM_EVENT_CRASH = 3

EXIT_REASONS = {
    0: "UNKNOWN", 1: "EXCEPTION", 2: "IO", 3: "HYPERCALL", 4: "DEBUG", 5: "HLT", 6: "MMIO",
    7: "IRQ_WINDOW_OPEN", 8: "SHUTDOWN", 9: "FAIL_ENTRY", 10: "INTR", 11: "SET_TPR",
    12: "TPR_ACCESS", 16: "NMI", 17: "INTERNAL_ERROR", 24: "SYSTEM_EVENT", 26: "IOAPIC_EOI",
    29: "X86_RDMSR", 30: "X86_WRMSR", 33: "X86_BUS_LOCK", 37: "NOTIFY",
}
KVM_EXIT_UNKNOWN = 0
KVM_EXIT_EXCEPTION = 1
KVM_EXIT_IO = 2
KVM_EXIT_DEBUG = 4
KVM_EXIT_HLT = 5
KVM_EXIT_MMIO = 6
KVM_EXIT_IRQ_WINDOW_OPEN = 7
KVM_EXIT_SHUTDOWN = 8
KVM_EXIT_FAIL_ENTRY = 9
KVM_EXIT_INTR = 10
KVM_EXIT_INTERNAL_ERROR = 17
KVM_EXIT_SYSTEM_EVENT = 24

# -- capabilities --------------------------------------------------------------------------
KVM_CAP_IRQCHIP = 0
KVM_CAP_HLT = 1
KVM_CAP_USER_MEMORY = 3
KVM_CAP_SET_TSS_ADDR = 4
KVM_CAP_EXT_CPUID = 7
KVM_CAP_NR_VCPUS = 9
KVM_CAP_NR_MEMSLOTS = 10
KVM_CAP_SET_GUEST_DEBUG = 23
KVM_CAP_MP_STATE = 14
KVM_CAP_IRQ_ROUTING = 25
KVM_CAP_IRQFD = 32
KVM_CAP_PIT2 = 33
KVM_CAP_IOEVENTFD = 36
KVM_CAP_SET_IDENTITY_MAP_ADDR = 37
KVM_CAP_INTERNAL_ERROR_DATA = 40
KVM_CAP_XSAVE = 55
KVM_CAP_XCRS = 56
KVM_CAP_TSC_CONTROL = 60
KVM_CAP_GET_TSC_KHZ = 61
KVM_CAP_MAX_VCPUS = 66
KVM_CAP_SIGNAL_MSI = 77
KVM_CAP_IMMEDIATE_EXIT = 136
KVM_CAP_EXIT_ON_EMULATION_FAILURE = 204

KVM_API_VERSION = 12

# -- ioctl numbers -------------------------------------------------------------------------
KVM_GET_API_VERSION = _io(0x00)
KVM_CREATE_VM = _io(0x01)
KVM_GET_MSR_INDEX_LIST = _iowr(0x02, KvmMsrListHeader)
KVM_CHECK_EXTENSION = _io(0x03)
KVM_GET_VCPU_MMAP_SIZE = _io(0x04)
KVM_GET_SUPPORTED_CPUID = _iowr(0x05, KvmCpuid2Header)

KVM_CREATE_VCPU = _io(0x41)
KVM_SET_USER_MEMORY_REGION = _iow(0x46, KvmUserspaceMemoryRegion)
KVM_SET_TSS_ADDR = _io(0x47)
KVM_SET_IDENTITY_MAP_ADDR = _iow(0x48, u64)
KVM_CREATE_IRQCHIP = _io(0x60)
KVM_IRQ_LINE = _iow(0x61, KvmIrqLevel)
KVM_SET_GSI_ROUTING = _iow(0x6A, KvmIrqRoutingHeader)
KVM_IRQFD = _iow(0x76, KvmIrqfd)
KVM_CREATE_PIT2 = _iow(0x77, KvmPitConfig)
KVM_SET_BOOT_CPU_ID = _io(0x78)
KVM_IOEVENTFD = _iow(0x79, KvmIoeventfd)
KVM_ENABLE_CAP = _iow(0xA3, KvmEnableCap)

KVM_RUN = _io(0x80)
KVM_GET_REGS = _ior(0x81, KvmRegs)
KVM_SET_REGS = _iow(0x82, KvmRegs)
KVM_GET_SREGS = _ior(0x83, KvmSregs)
KVM_SET_SREGS = _iow(0x84, KvmSregs)
KVM_TRANSLATE = _iowr(0x85, KvmTranslation)
KVM_GET_MSRS = _iowr(0x88, KvmMsrsHeader)
KVM_SET_MSRS = _iow(0x89, KvmMsrsHeader)
KVM_GET_FPU = _ior(0x8C, KvmFpu)
KVM_SET_FPU = _iow(0x8D, KvmFpu)
KVM_GET_LAPIC = _ior(0x8E, KvmLapicState)
KVM_SET_LAPIC = _iow(0x8F, KvmLapicState)
KVM_SET_CPUID2 = _iow(0x90, KvmCpuid2Header)
KVM_GET_CPUID2 = _iowr(0x91, KvmCpuid2Header)
KVM_GET_MP_STATE = _ior(0x98, KvmMpState)
KVM_SET_MP_STATE = _iow(0x99, KvmMpState)
KVM_SET_GUEST_DEBUG = _iow(0x9B, KvmGuestDebug)
KVM_SET_TSC_KHZ = _io(0xA2)
KVM_GET_TSC_KHZ = _io(0xA3)

# -- VM state (savevm, migration): the structs KVM hands out and takes back whole ---------
class KvmXsave(ctypes.Structure):
    """struct kvm_xsave: the vCPU's XSAVE area as the CPU lays it out (legacy FXSAVE
    image, XSAVE header, components), read by the host even where the guest cannot
    execute XSAVE itself."""
    _fields_ = [("region", u32 * 1024)]


class KvmXcr(ctypes.Structure):
    _fields_ = [("xcr", u32), ("reserved", u32), ("value", u64)]


class KvmXcrs(ctypes.Structure):
    _fields_ = [("nr_xcrs", u32), ("flags", u32), ("xcrs", KvmXcr * 16),
                ("padding", u64 * 16)]


class KvmVcpuEvents(ctypes.Structure):
    """struct kvm_vcpu_events: pending exception, interrupt, NMI, SIPI and SMM state."""
    _fields_ = [
        ("exception_injected", u8), ("exception_nr", u8), ("exception_has_error_code", u8),
        ("exception_pending", u8), ("exception_error_code", u32),
        ("interrupt_injected", u8), ("interrupt_nr", u8), ("interrupt_soft", u8),
        ("interrupt_shadow", u8),
        ("nmi_injected", u8), ("nmi_pending", u8), ("nmi_masked", u8), ("nmi_pad", u8),
        ("sipi_vector", u32), ("flags", u32),
        ("smi_smm", u8), ("smi_pending", u8), ("smi_inside_nmi", u8),
        ("smi_latched_init", u8),
        ("triple_fault_pending", u8), ("reserved", u8 * 26),
        ("exception_has_payload", u8), ("exception_payload", u64),
    ]


KVM_VCPUEVENT_VALID_NMI_PENDING = 0x1
KVM_VCPUEVENT_VALID_SIPI_VECTOR = 0x2
KVM_VCPUEVENT_VALID_SHADOW = 0x4
KVM_VCPUEVENT_VALID_SMM = 0x8


class KvmDebugregs(ctypes.Structure):
    _fields_ = [("db", u64 * 4), ("dr6", u64), ("dr7", u64), ("flags", u64),
                ("reserved", u64 * 9)]


class KvmIrqchip(ctypes.Structure):
    """struct kvm_irqchip: one in-kernel chip (PIC master, PIC slave or IOAPIC) as an
    opaque 512-byte state (the union of kvm_pic_state and kvm_ioapic_state)."""
    _fields_ = [("chip_id", u32), ("pad", u32), ("chip", u64 * 64)]


class KvmPitChannelState(ctypes.Structure):
    _fields_ = [
        ("count", u32), ("latched_count", u16), ("count_latched", u8),
        ("status_latched", u8), ("status", u8), ("read_state", u8), ("write_state", u8),
        ("write_latch", u8), ("rw_mode", u8), ("mode", u8), ("bcd", u8), ("gate", u8),
        ("count_load_time", ctypes.c_int64),
    ]


class KvmPitState2(ctypes.Structure):
    _fields_ = [("channels", KvmPitChannelState * 3), ("flags", u32), ("reserved", u32 * 9)]


class KvmClockData(ctypes.Structure):
    _fields_ = [("clock", u64), ("flags", u32), ("pad0", u32), ("realtime", u64),
                ("host_tsc", u64), ("pad", u32 * 4)]


class KvmDirtyLog(ctypes.Structure):
    _fields_ = [("slot", u32), ("padding1", u32), ("dirty_bitmap", u64)]


class KvmClearDirtyLog(ctypes.Structure):
    _fields_ = [("slot", u32), ("num_pages", u32), ("first_page", u64),
                ("dirty_bitmap", u64)]


KVM_MEM_LOG_DIRTY_PAGES = 1 << 0
KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE = 1 << 0
KVM_CAP_ADJUST_CLOCK = 39
KVM_CAP_VCPU_EVENTS = 41
KVM_CAP_DEBUGREGS = 50
KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2 = 168

KVM_GET_DIRTY_LOG = _iow(0x42, KvmDirtyLog)
KVM_CLEAR_DIRTY_LOG = _iowr(0xC0, KvmClearDirtyLog)
KVM_GET_IRQCHIP = _iowr(0x62, KvmIrqchip)
KVM_SET_IRQCHIP = _ior(0x63, KvmIrqchip)  # sic: the header declares it _IOR
KVM_SET_CLOCK = _iow(0x7B, KvmClockData)
KVM_GET_CLOCK = _ior(0x7C, KvmClockData)
KVM_GET_PIT2 = _ior(0x9F, KvmPitState2)
KVM_SET_PIT2 = _iow(0xA0, KvmPitState2)
KVM_GET_VCPU_EVENTS = _ior(0x9F, KvmVcpuEvents)
KVM_SET_VCPU_EVENTS = _iow(0xA0, KvmVcpuEvents)
KVM_GET_DEBUGREGS = _ior(0xA1, KvmDebugregs)
KVM_SET_DEBUGREGS = _iow(0xA2, KvmDebugregs)
KVM_GET_XSAVE = _ior(0xA4, KvmXsave)
KVM_SET_XSAVE = _iow(0xA5, KvmXsave)
KVM_GET_XCRS = _ior(0xA6, KvmXcrs)
KVM_SET_XCRS = _iow(0xA7, KvmXcrs)
KVM_CAP_XSAVE2 = 208  # KVM_CHECK_EXTENSION on a VM: the size of its XSAVE area
KVM_GET_XSAVE2 = _ior(0xCF, KvmXsave)  # KVM_SET_XSAVE then takes that size, too

# KVM_GET/SET_SREGS2 (Linux 5.14): sregs with the PAE PDPTRs, which plain SET_SREGS
# reloads from guest memory (wrong if the guest changed that memory since loading CR3)
KVM_CAP_SREGS2 = 200
KVM_SREGS2_FLAGS_PDPTRS_VALID = 1


class KvmSregs2(ctypes.Structure):
    _fields_ = [
        ("cs", KvmSegment), ("ds", KvmSegment), ("es", KvmSegment), ("fs", KvmSegment),
        ("gs", KvmSegment), ("ss", KvmSegment), ("tr", KvmSegment), ("ldt", KvmSegment),
        ("gdt", KvmDtable), ("idt", KvmDtable),
        ("cr0", u64), ("cr2", u64), ("cr3", u64), ("cr4", u64), ("cr8", u64),
        ("efer", u64), ("apic_base", u64), ("flags", u64), ("pdptrs", u64 * 4),
    ]


KVM_GET_SREGS2 = _ior(0xCC, KvmSregs2)
KVM_SET_SREGS2 = _iow(0xCD, KvmSregs2)
