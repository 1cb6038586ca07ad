"""A register script for the GICv3, PL011 and PL031 of the Arm virt board, turned into a
bare-metal AArch64 program that prints every value it reads (16 hex digits a line) on
the PL011 and powers off with PSCI SYSTEM_OFF.  Run on QEMU's virt and on pemu's, the
two outputs must be identical (tests/hw/test_arm_gic_qemu_oracle.py).

Interrupts stay masked in PSTATE (DAIF.I at reset), so nothing is taken: the GIC's
decisions show in what IAR, HPPIR, RPR, the active-priority and the pending/active
registers read.
"""

from __future__ import annotations

import random

DIST = 0x0800_0000
REDIST = 0x080A_0000
SGI = REDIST + 0x10000
UART = 0x0900_0000
RTC = 0x0901_0000
NOT_LPI_BITS = ((1 << 64) - 1) & ~0x300_0001  # GICR_TYPER without PLPIS, CommonLPIAff

ICC = {
    "PMR": "S3_0_C4_C6_0", "IAR0": "S3_0_C12_C8_0", "EOIR0": "S3_0_C12_C8_1",
    "HPPIR0": "S3_0_C12_C8_2", "BPR0": "S3_0_C12_C8_3", "AP0R0": "S3_0_C12_C8_4",
    "AP1R0": "S3_0_C12_C9_0", "DIR": "S3_0_C12_C11_1", "RPR": "S3_0_C12_C11_3",
    "SGI1R": "S3_0_C12_C11_5", "SGI0R": "S3_0_C12_C11_7", "IAR1": "S3_0_C12_C12_0",
    "EOIR1": "S3_0_C12_C12_1", "HPPIR1": "S3_0_C12_C12_2", "BPR1": "S3_0_C12_C12_3",
    "CTLR": "S3_0_C12_C12_4", "SRE": "S3_0_C12_C12_5", "IGRPEN0": "S3_0_C12_C12_6",
    "IGRPEN1": "S3_0_C12_C12_7",
}

Step = tuple


def rd(addr: int, size: int = 4, mask: int = (1 << 64) - 1) -> Step:
    """Read and print; ``mask`` leaves out bits that differ by design."""
    return ("rd", addr, size, mask)


def wr(addr: int, value: int, size: int = 4) -> Step:
    return ("wr", addr, size, value)


def mrs(reg: str) -> Step:
    return ("mrs", reg)


def msr(reg: str, value: int) -> Step:
    return ("msr", reg, value)


def _ack_cycle(intid: int) -> list[Step]:
    return [mrs("HPPIR1"), mrs("IAR1"), mrs("RPR"), mrs("AP1R0"), rd(DIST + 0x304),
            msr("EOIR1", intid), mrs("RPR"), rd(DIST + 0x304)]


def script() -> list[Step]:
    s: list[Step] = []
    # Identification and power-on values.
    # GICR_TYPER's LPI bits differ by design: QEMU's virt has an ITS, pemu has no LPIs.
    s += [rd(DIST), rd(DIST + 0xFFE8), rd(REDIST + 0xFFE8), rd(REDIST + 8, 8, NOT_LPI_BITS),
          rd(REDIST + 0x14), rd(SGI + 0xC00), rd(SGI + 0xC04), rd(DIST + 8), rd(REDIST + 4)]
    s += [mrs(r) for r in ("SRE", "CTLR", "PMR", "BPR0", "BPR1", "RPR", "IGRPEN0",
                           "IGRPEN1", "IAR1", "HPPIR1")]
    s += [rd(UART + 0xFE0 + 4 * i) for i in range(8)]
    s += [rd(UART + 0x18), rd(UART + 0x30), rd(UART + 0x34)]
    s += [rd(RTC + 0xFE0 + 4 * i) for i in range(8)] + [rd(RTC + 0xC)]
    # Wake the redistributor; enable the distributor's groups.
    s += [wr(REDIST + 0x14, 0), rd(REDIST + 0x14), wr(DIST, 0x13), rd(DIST)]
    # Groups, priorities (which bits stick), the CPU interface's mask and binary points.
    s += [wr(DIST + 0x84, 0xFFFF_FFFF), rd(DIST + 0x84), wr(SGI + 0x80, 0xFFFF_FFFF),
          rd(SGI + 0x80), wr(DIST + 0x420, 0x8040_A0FF), rd(DIST + 0x420),
          wr(DIST + 0x424, 0xA0A0_A0A0), rd(DIST + 0x421, 1), rd(DIST + 0x422, 1)]
    s += [msr("PMR", 0xFF), mrs("PMR"), msr("BPR1", 0), mrs("BPR1"), msr("BPR0", 0),
          mrs("BPR0"), msr("PMR", 0xF0)]
    # SPI 33 (priority 0xA0) made pending by software: not taken with group 1 off.
    s += [wr(DIST + 0x6000 + 8 * 33, 0, 8), wr(DIST + 0x6000 + 8 * 34, 0, 8),
          wr(DIST + 0x104, 0b1111_0), rd(DIST + 0x104), wr(DIST + 0x204, 0b10),
          rd(DIST + 0x204), mrs("HPPIR1"), mrs("IAR1")]
    s += [msr("IGRPEN1", 1), mrs("IGRPEN1")]
    s += _ack_cycle(33)
    # 33 (priority 0x80 after this write) running, then 34 (0x40) preempts it.
    s += [wr(DIST + 0x421, 0x80, 1), wr(DIST + 0x422, 0x40, 1), wr(DIST + 0x204, 0b10),
          mrs("IAR1"), mrs("RPR"), wr(DIST + 0x204, 0b100), mrs("HPPIR1"), mrs("IAR1"),
          mrs("RPR"), mrs("AP1R0"), msr("EOIR1", 34), mrs("RPR"), msr("EOIR1", 33),
          mrs("RPR"), mrs("AP1R0"), rd(DIST + 0x304)]
    # Equal group priority does not preempt; ties go to the lower INTID.
    s += [wr(DIST + 0x422, 0x80, 1), wr(DIST + 0x204, 0b110), mrs("HPPIR1"), mrs("IAR1"),
          mrs("HPPIR1"), mrs("IAR1"), msr("EOIR1", 33), mrs("IAR1"), msr("EOIR1", 34)]
    # The priority mask: 0x80 is not below PMR 0x80.
    s += [msr("PMR", 0x80), wr(DIST + 0x204, 0b10), mrs("HPPIR1"), mrs("IAR1"),
          msr("PMR", 0xF0), mrs("IAR1"), msr("EOIR1", 33)]
    # Trigger configuration; a level interrupt pended by ISPENDR and acknowledged.
    s += [wr(DIST + 0xC08, 0b10 << 2), rd(DIST + 0xC08), wr(DIST + 0x204, 0b100),
          mrs("IAR1"), rd(DIST + 0x204), msr("EOIR1", 34), rd(DIST + 0x204)]
    # Split priority drop and deactivation.
    s += [msr("CTLR", 2), mrs("CTLR"), wr(DIST + 0x204, 0b10), mrs("IAR1"),
          msr("EOIR1", 33), mrs("RPR"), rd(DIST + 0x304), wr(DIST + 0x204, 0b10),
          mrs("HPPIR1"), mrs("IAR1"), msr("DIR", 33), rd(DIST + 0x304), mrs("HPPIR1"),
          mrs("IAR1"), msr("EOIR1", 33), msr("DIR", 33), msr("CTLR", 0)]
    # Clear-pending, set/clear-active, clear-enable.
    s += [wr(DIST + 0x204, 0b10), wr(DIST + 0x284, 0b10), rd(DIST + 0x204),
          wr(DIST + 0x304, 0b1000), rd(DIST + 0x304), rd(DIST + 0x384),
          wr(DIST + 0x384, 0b1000), rd(DIST + 0x304), wr(DIST + 0x184, 0b10),
          rd(DIST + 0x104), wr(DIST + 0x204, 0b10), mrs("HPPIR1"), wr(DIST + 0x284, 0b10)]
    # SGIs: to itself by target list, to others only (IRM), group 0 by SGI0R as FIQ.
    s += [wr(SGI + 0x100, 0xFFFF), rd(SGI + 0x100), msr("SGI1R", (3 << 24) | 1),
          rd(SGI + 0x200), mrs("HPPIR1"), mrs("IAR1"), msr("EOIR1", 3),
          msr("SGI1R", (4 << 24) | (1 << 40)), rd(SGI + 0x200),
          msr("SGI1R", (4 << 24) | (1 << 16) | 1), rd(SGI + 0x200),
          msr("SGI0R", (6 << 24) | 1), rd(SGI + 0x200),
          wr(SGI + 0x80, 0xFFFF_FFDF), msr("IGRPEN0", 1), msr("SGI0R", (5 << 24) | 1),
          rd(SGI + 0x200), mrs("HPPIR1"), mrs("HPPIR0"), mrs("IAR1"), mrs("IAR0"),
          mrs("AP0R0"), mrs("RPR"), msr("EOIR0", 5), mrs("AP0R0"), rd(SGI + 0x300)]
    # PPI registers in the SGI frame; routing registers; active priorities written.
    s += [wr(SGI + 0x100, 1 << 27), wr(SGI + 0x200, 1 << 27), mrs("HPPIR1"), mrs("IAR1"),
          msr("EOIR1", 27), wr(SGI + 0xC04, 0x8000_0000), rd(SGI + 0xC04),
          wr(SGI + 0x41B, 0x30, 1), rd(SGI + 0x418)]
    s += [wr(DIST + 0x6000 + 8 * 40, 0x0000_0001_0003_0402, 8),
          rd(DIST + 0x6000 + 8 * 40, 8), wr(DIST + 0x6000 + 8 * 40, 1 << 31, 8),
          rd(DIST + 0x6000 + 8 * 40, 8), rd(DIST + 0x6000 + 8 * 40 + 4)]
    s += [msr("AP1R0", 1 << 4), mrs("RPR"), msr("AP1R0", 0), mrs("RPR")]
    s += _pl011_pl031()
    return s


def _pl011_pl031() -> list[Step]:
    """The UART's and RTC's registers that do not depend on time or input.  (Every
    printed character is a DR write, so TX interrupt state is read before printing.)"""
    # Only defined bits are written: QEMU 7.2 keeps reserved bits that the TRM has
    # read as zero (and pemu does).
    s = [wr(UART + 0x24, 0x2345), rd(UART + 0x24), wr(UART + 0x28, 0x2A), rd(UART + 0x28),
         wr(UART + 0x2C, 0x70), rd(UART + 0x2C), rd(UART + 0x18), wr(UART + 0x34, 0x2D),
         rd(UART + 0x34), wr(UART + 0x20, 0xAB), rd(UART + 0x20), wr(UART + 0x48, 0x5),
         rd(UART + 0x48), wr(UART + 0x30, 0x301), rd(UART + 0x30), rd(UART + 0x4),
         wr(UART + 0x38, 0x7FF), rd(UART + 0x38), rd(UART + 0x3C, 4, 0x20), rd(UART + 0x40),
         wr(UART + 0x44, 0x7FF), rd(UART + 0x3C), wr(UART + 0x38, 0), rd(UART + 0x40)]
    s += [wr(RTC + 0x4, 0x1234_5678), rd(RTC + 0x4), wr(RTC + 0x10, 3), rd(RTC + 0x10),
          rd(RTC + 0x14), rd(RTC + 0x18), wr(RTC + 0x1C, 1), rd(RTC + 0x14),
          wr(RTC + 0x10, 0)]
    return s


def script_random(seed: int = 1, count: int = 400) -> list[Step]:
    """Random accesses to the registers that decide delivery (SPIs 32-63, the SGIs and
    PPIs, the CPU interface), a read after every write, from a fixed seed.  (They found
    where pemu differed from QEMU: a pending interrupt of a group the CPU interface has
    off still hides the other group's, EOIR only ends its own group's priority, DIR
    without EOImode does nothing.)"""
    rng = random.Random(seed)
    s: list[Step] = [wr(REDIST + 0x14, 0), wr(DIST, 0x13)]
    blocks = (0x080, 0x100, 0x180, 0x200, 0x280, 0x300, 0x380)
    for _ in range(count):
        pick = rng.randrange(10)
        if pick < 3:  # a per-interrupt bitmap of the distributor (SPIs 32-63) or SGI frame
            base = rng.choice((DIST + 4, SGI))
            reg = base + rng.choice(blocks)
            s += [wr(reg, rng.getrandbits(32) & rng.getrandbits(32)), rd(reg)]
        elif pick == 3:  # a priority byte, or a trigger word
            if rng.randrange(2):
                reg = rng.choice((DIST + 0x420, SGI + 0x400)) + rng.randrange(32)
                s += [wr(reg, rng.choice((0x00, 0x40, 0x60, 0x80, 0xA0, 0xF0, 0xFF)), 1),
                      rd(reg, 1)]
            else:
                reg = rng.choice((DIST + 0xC08, DIST + 0xC0C, SGI + 0xC04))
                s += [wr(reg, rng.getrandbits(32) & 0xAAAA_AAAA), rd(reg)]
        elif pick == 4:
            name = rng.choice(("PMR", "BPR0", "BPR1", "IGRPEN0", "IGRPEN1", "CTLR"))
            value = {"PMR": rng.choice((0x00, 0x50, 0x80, 0xF0, 0xFF)),
                     "CTLR": rng.randrange(4)}.get(name, rng.randrange(8))
            s += [msr(name, value), mrs(name)]
        elif pick == 5:
            s += [msr("SGI1R", (rng.randrange(16) << 24) | 1 | (rng.randrange(2) << 40))]
        else:
            s += [mrs(rng.choice(("HPPIR0", "HPPIR1", "RPR", "AP0R0", "AP1R0"))),
                  mrs(rng.choice(("IAR0", "IAR1", "IAR1")))]
            if rng.randrange(3):
                # End the running interrupt: the register is read back into x0 above.
                s += [asm(f"msr {ICC[rng.choice(('EOIR0', 'EOIR1'))]}, x0")]
            if rng.randrange(4) == 0:
                s += [asm(f"msr {ICC['DIR']}, x0")]
    return s


GICC = 0x0801_0000  # the GICv2 CPU interface (gic-version=2)


def script_v2() -> list[Step]:
    """The same decisions through GICv2's distributor and memory-mapped CPU interface."""
    iar, eoir, hppir, rpr, apr = GICC + 0xC, GICC + 0x10, GICC + 0x18, GICC + 0x14, \
        GICC + 0xD0
    s: list[Step] = [rd(DIST), rd(DIST + 4), rd(DIST + 0x800), rd(DIST + 0xC00),
                     rd(DIST + 0xC04), rd(GICC), rd(GICC + 4), rd(GICC + 8), rd(GICC + 0x1C),
                     rd(GICC + 0xFC), rd(rpr), rd(iar), rd(hppir)]
    s += [wr(DIST, 1), rd(DIST), wr(GICC, 1), rd(GICC), wr(GICC + 4, 0xFF), rd(GICC + 4),
          wr(GICC + 8, 0), rd(GICC + 8), wr(GICC + 4, 0xF0)]
    s += [wr(DIST + 0x820, 0x0101_0101), rd(DIST + 0x820), wr(DIST + 0x420, 0xA080_40A0),
          rd(DIST + 0x420), wr(DIST + 0x104, 0b1110), rd(DIST + 0x104)]
    # 33 (0x80) pending and acknowledged; 34 (0x40) preempts it.
    s += [wr(DIST + 0x204, 0b10), rd(DIST + 0x204), rd(hppir), rd(iar), rd(rpr), rd(apr),
          rd(DIST + 0x304), wr(DIST + 0x204, 0b100), rd(hppir), rd(iar), rd(rpr), rd(apr),
          wr(eoir, 34), rd(rpr), wr(eoir, 33), rd(rpr), rd(apr), rd(DIST + 0x304)]
    # The mask; SGIs to itself (the source shows in IAR), pending per source.
    s += [wr(GICC + 4, 0x80), wr(DIST + 0x204, 0b10), rd(hppir), rd(iar),
          wr(GICC + 4, 0xF0), rd(iar), wr(eoir, 33)]
    s += [wr(DIST + 0x100, 0xFFFF), wr(DIST + 0xF00, (2 << 24) | 3), rd(DIST + 0x200),
          rd(DIST + 0xF20), rd(hppir), rd(iar), rd(DIST + 0xF20), wr(eoir, 3),
          wr(DIST + 0xF00, (0b1 << 16) | 5), rd(DIST + 0xF24), wr(DIST + 0xF14, 0xFF << 8),
          rd(DIST + 0xF24), rd(DIST + 0x200)]
    # Split priority drop and deactivation (GICC_DIR at 0x1000).
    s += [wr(GICC, 1 | 1 << 9), rd(GICC), wr(DIST + 0x204, 0b10), rd(iar), wr(eoir, 33),
          rd(rpr), rd(DIST + 0x304), wr(GICC + 0x1000, 33), rd(DIST + 0x304), wr(GICC, 1)]
    # Group 1 interrupts: AckCtl decides whether GICC_IAR takes them.
    s += [wr(DIST + 0x84, 0b10), rd(DIST + 0x84), wr(DIST, 3), rd(DIST), wr(GICC, 3),
          rd(GICC), wr(DIST + 0x204, 0b10), rd(hppir), rd(iar), rd(GICC + 0x28),
          rd(GICC + 0x20), rd(rpr), rd(GICC + 0xE0), wr(GICC + 0x24, 33), rd(rpr),
          wr(GICC, 7), wr(DIST + 0x204, 0b10), rd(hppir), rd(iar), wr(eoir, 33)]
    return s


def asm(*lines: str) -> Step:
    return ("asm", *lines)


def script_delivery() -> list[Step]:
    """Interrupts really taken: the vector table's IRQ handler prints what ICC_IAR1
    returns (and stops the virtual timer when it was that), its FIQ handler what ICC_IAR0
    returns; the program prints 0xd0e after each case."""
    done = [asm("ldr x0, =0xd0e", "bl print_hex")]
    s: list[Step] = [asm("adr x0, vectors", "msr vbar_el1, x0", "isb")]
    s += [wr(REDIST + 0x14, 0), wr(DIST, 0x13), wr(DIST + 0x84, 0xFFFF_FFFF),
          wr(SGI + 0x80, 0xFFFF_FFFB), msr("PMR", 0xF0), msr("IGRPEN1", 1),
          msr("IGRPEN0", 1)]
    # An SGI to itself, taken as soon as IRQs are unmasked.
    s += [wr(SGI + 0x100, 0b111), msr("SGI1R", (1 << 24) | 1),
          asm("msr daifclr, #2", "isb", "msr daifset, #2")] + done
    # An SPI pended by software.
    s += [wr(DIST + 0x6000 + 8 * 40, 0, 8), wr(DIST + 0x104, 1 << 8),
          wr(DIST + 0x204, 1 << 8), asm("msr daifclr, #2", "isb", "msr daifset, #2")] + done
    # Two at once: the higher priority (lower value) first, then the other.
    s += [wr(DIST + 0x428, 0xA0, 1), wr(DIST + 0x429, 0x60, 1), wr(DIST + 0x104, 0b11 << 8),
          wr(DIST + 0x204, 0b11 << 8), asm("msr daifclr, #2", "isb", "msr daifset, #2")]
    s += done
    # Group 0 SGI 2: a FIQ.
    s += [msr("SGI0R", (2 << 24) | 1), asm("msr daifclr, #1", "isb", "msr daifset, #1")]
    s += done
    # The virtual timer on PPI 27: wait for it with WFI.
    # The idle pattern Linux uses: WFI with IRQs masked wakes on the pending interrupt,
    # which is taken once they are unmasked.
    s += [wr(SGI + 0x100, 1 << 27),
          asm("ldr x0, =100000", "msr cntv_tval_el0, x0", "mov x0, #1",
              "msr cntv_ctl_el0, x0", "3: mrs x0, cntv_ctl_el0", "cbz x0, 5f", "wfi",
              "msr daifclr, #2", "isb", "msr daifset, #2", "b 3b", "5:")] + done
    return s


def script_delivery_v2() -> list[Step]:
    """The same through GICv2 (gic-version=2): GICD_SGIR, GICC_IAR/EOIR in the handler
    (SGIs show their source CPU in bits 10-12); group 0 is IRQ there (no FIQEn)."""
    done = [asm("ldr x0, =0xd0e", "bl print_hex")]
    s: list[Step] = [asm("adr x0, vectors", "msr vbar_el1, x0", "isb")]
    s += [wr(DIST, 1), wr(GICC + 4, 0xF0), wr(GICC, 1), wr(DIST + 0x100, 0b111)]
    s += [wr(DIST + 0xF00, (2 << 24) | 1), asm("msr daifclr, #2", "isb", "msr daifset, #2")]
    s += done
    s += [wr(DIST + 0x428, 0xA0A0_60A0), wr(DIST + 0x104, 0b111 << 8),
          wr(DIST + 0x204, 0b11 << 8), asm("msr daifclr, #2", "isb", "msr daifset, #2")]
    s += done
    s += [wr(DIST + 0x100, 1 << 27),
          asm("ldr x0, =100000", "msr cntv_tval_el0, x0", "mov x0, #1",
              "msr cntv_ctl_el0, x0", "3: mrs x0, cntv_ctl_el0", "cbz x0, 5f", "wfi",
              "msr daifclr, #2", "isb", "msr daifset, #2", "b 3b", "5:")] + done
    return s


def script_smp(version: int) -> list[Step]:
    """Two CPUs (-smp 2): CPU 0 starts CPU 1 with PSCI CPU_ON; CPU 1 sets up its own
    (banked) CPU interface and waits in WFI; CPU 0 sends it SGI 3; CPU 1's handler prints
    what its IAR returns.  Flags in memory order the two CPUs' output."""
    if version == 3:
        rd1 = REDIST + 0x20000
        own = [wr(rd1 + 0x14, 0), wr(rd1 + 0x10080, 0xFFFF_FFFF), wr(rd1 + 0x10100, 1 << 3),
               msr("PMR", 0xF0), msr("IGRPEN1", 1)]
        setup = [wr(DIST, 0x13)]
        send = [msr("SGI1R", (3 << 24) | 0b10)]
    else:
        own = [wr(DIST + 0x100, 1 << 3), wr(GICC + 4, 0xF0), wr(GICC, 1)]
        setup = [wr(DIST, 1)]
        send = [wr(DIST + 0xF00, (0b10 << 16) | 3)]
    wait = "9: ldr x0, {0}", "cbz x0, 9b"
    s: list[Step] = [asm("adr x0, vectors", "msr vbar_el1, x0", "isb"), *setup]
    s += [asm("ldr x0, =0xc4000003", "mov x1, #1", "adr x2, secondary", "mov x3, #0",
              "hvc #0", "bl print_hex", *(w.format("flag1") for w in wait))]
    s += send + [asm(*(w.format("flag2") for w in wait), "ldr x0, =0xd0e", "bl print_hex",
                     "b 10f", "secondary:", "adr x0, vectors", "msr vbar_el1, x0", "isb")]
    s += own + [asm("mov x0, #1", "adr x11, flag1", "str x0, [x11]", "dsb sy",
                    "3: ldr x0, flag2", "cbnz x0, 5f", "wfi", "msr daifclr, #2", "isb",
                    "msr daifset, #2", "b 3b", "5: b 5b", "10:")]
    return s


def _vectors() -> list[str]:
    """Current EL with SP_ELx: IRQ at +0x280, FIQ at +0x300.  The IRQ handler reads the
    GICv3 ICC_IAR1 or, when ``gicc_base`` (x10) is set, GICv2's GICC_IAR."""
    return [
        ".balign 2048", "vectors:", ".space 0x280", "b irq_handler", ".balign 128",
        "b fiq_handler", ".balign 128", ".space 0x100",
        "irq_handler:", "ldr x10, gicc_base", "cbnz x10, 6f", f"mrs x0, {ICC['IAR1']}",
        "b 7f", "6: ldr w0, [x10, #0xc]", "7: mov x9, x0", "bl print_hex",
        "and x11, x9, #0x3ff", "cmp x11, #27", "b.ne 4f", "msr cntv_ctl_el0, xzr",
        "4: adr x11, flag2", "mov x12, #1", "str x12, [x11]", "dsb sy",
        "cbnz x10, 8f", f"msr {ICC['EOIR1']}, x9", "eret", "8: str w9, [x10, #0x10]",
        "eret",
        "fiq_handler:", f"mrs x0, {ICC['IAR0']}", "mov x9, x0", "bl print_hex",
        f"msr {ICC['EOIR0']}, x9", "eret",
    ]


def assembly(steps: list[Step], gicc_base: int = 0) -> str:
    """The program: ``_start`` runs the steps, then SYSTEM_OFF.  ``gicc_base``: the
    GICv2 CPU interface the IRQ handler uses (0: the GICv3 system registers)."""
    out = [".global _start", ".text", "_start:", "ldr x0, =stack_top", "mov sp, x0"]
    for step in steps:
        kind = step[0]
        if kind == "rd":
            _, addr, size, mask = step
            reg = {1: "ldrb w0", 2: "ldrh w0", 4: "ldr w0", 8: "ldr x0"}[size]
            out += [f"ldr x5, ={addr:#x}", f"{reg}, [x5]", f"ldr x7, ={mask:#x}",
                    "and x0, x0, x7", "bl print_hex"]
        elif kind == "wr":
            _, addr, size, value = step
            reg = {1: "strb w6", 2: "strh w6", 4: "str w6", 8: "str x6"}[size]
            out += [f"ldr x5, ={addr:#x}", f"ldr x6, ={value:#x}", f"{reg}, [x5]"]
        elif kind == "mrs":
            out += [f"mrs x0, {ICC[step[1]]}", "bl print_hex"]
        elif kind == "asm":
            out += list(step[1:])
        else:
            out += [f"ldr x6, ={step[2]:#x}", f"msr {ICC[step[1]]}, x6", "isb"]
    out += ["ldr x0, =0x84000008", "hvc #0", "1: b 1b", ".ltorg", ".balign 8",
            "gicc_base:", f".quad {gicc_base:#x}", "flag1:", ".quad 0", "flag2:", ".quad 0",
            *_vectors()]
    out += [
        "print_hex:", f"ldr x1, ={UART:#x}", "mov x3, #60",
        "2: lsr x2, x0, x3", "and x2, x2, #15", "cmp x2, #10", "add x4, x2, #'0'",
        "add x2, x2, #'a' - 10", "csel x2, x4, x2, lo", "strb w2, [x1]",
        "subs x3, x3, #4", "b.pl 2b", "mov x2, #10", "strb w2, [x1]", "ret", ".ltorg",
        ".bss", ".balign 16", ".space 4096", "stack_top:",
    ]
    return "\n".join(out) + "\n"
