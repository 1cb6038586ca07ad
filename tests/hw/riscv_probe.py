"""Run a list of MMIO reads/writes on QEMU's RISC-V ``virt`` board, bare metal.

The list is compiled into a tiny freestanding program; every value read is collected
and printed (as hex, after ``RESULTS:``) on the UART once the list is done, then the
program powers QEMU off through the SiFive test device.  Tests replay the same list
on pemu's device models and compare: QEMU is the oracle.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

CC = "riscv64-linux-gnu-gcc"
QEMU = "qemu-system-riscv64"
READ, WRITE, POLL = 0, 1, 2


def missing_tools() -> str | None:
    for tool in (CC, QEMU):
        if shutil.which(tool) is None:
            return f"needs {tool}"
    return None


PROGRAM = r"""
#include <stdint.h>
#define UART ((volatile unsigned char *)0x10000000UL)
#define FINISHER (*(volatile uint32_t *)0x100000UL)
struct op { uint8_t kind, size; uint64_t addr; uint32_t value, mask; };
static const struct op ops[] = { %(ops)s };
static uint32_t results[%(nreads)d + 1];
static void put(char c) { while (!(UART[5] & 0x20)) {} UART[0] = c; }
void main(void) {
    unsigned n = 0;
    for (unsigned i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
        const struct op *o = &ops[i];
        if (o->kind == 1) {
            if (o->size == 1) *(volatile uint8_t *)o->addr = o->value;
            else *(volatile uint32_t *)o->addr = o->value;
        } else if (o->kind == 2) {  /* wait for an asynchronous device, then record */
            uint32_t v = 0;
            for (long spin = 0; spin < 50000000; spin++)
                if (((v = *(volatile uint32_t *)o->addr) & o->mask) == o->value) break;
            results[n++] = v;
        } else {
            results[n++] = o->size == 1 ? *(volatile uint8_t *)o->addr
                                        : *(volatile uint32_t *)o->addr;
        }
    }
    UART[1] = 0; UART[3] = 3; UART[4] = 8; UART[2] = 7;
    const char *hex = "0123456789abcdef";
    for (const char *s = "RESULTS:"; *s; s++) put(*s);
    for (unsigned i = 0; i < n; i++)
        for (int b = 28; b >= 0; b -= 4) put(hex[(results[i] >> b) & 15]);
    put('\n');
    FINISHER = 0x5555;
    for (;;) {}
}
__attribute__((naked, section(".text.init"))) void _start(void) {
    __asm__ volatile("la sp, stack_top\n call main\n 1: j 1b");
}
"""

LINKER = """
ENTRY(_start)
SECTIONS {
  . = 0x80000000;
  .text : { *(.text.init) *(.text*) }
  .rodata : { *(.rodata*) *(.srodata*) }
  .data : { *(.data*) *(.sdata*) }
  .bss : { *(.bss*) *(.sbss*) *(COMMON) }
  . = ALIGN(16);
  . += 0x4000;
  stack_top = .;
}
"""

# (READ|WRITE|POLL, size 1|4, physical address, value[, mask]).  POLL spins until
# (word & mask) == value (bounded), then records the word like a READ.
Op = tuple[int, ...]


def run_on_qemu(ops: list[Op], workdir: Path, qemu_args: list[str] | None = None
                ) -> tuple[bytes, list[int]]:
    """(bytes the program's UART ops transmitted, values read) on real QEMU."""
    nreads = sum(1 for op in ops if op[0] != WRITE)
    body = ", ".join(f"{{{op[0]},{op[1]},0x{op[2]:x}UL,0x{op[3]:x}U,"
                     f"0x{op[4] if len(op) > 4 else 0xFFFFFFFF:x}U}}" for op in ops)
    (workdir / "probe.c").write_text(PROGRAM % {"ops": body, "nreads": nreads})
    (workdir / "probe.ld").write_text(LINKER)
    elf = workdir / "probe.elf"
    subprocess.run([CC, "-march=rv64imac", "-mabi=lp64", "-mcmodel=medany", "-O1",
                    "-ffreestanding", "-nostdlib", "-nostartfiles", "-static", "-fno-pic",
                    "-no-pie", "-Wl,--build-id=none", "-T", str(workdir / "probe.ld"),
                    "-o", str(elf), str(workdir / "probe.c")], check=True, capture_output=True)
    out = workdir / "serial.out"
    subprocess.run([QEMU, "-M", "virt", "-bios", "none", "-kernel", str(elf), "-display",
                    "none", "-monitor", "none", "-serial", f"file:{out}", *(qemu_args or [])],
                   check=True, capture_output=True, timeout=30, stdin=subprocess.DEVNULL)
    raw = out.read_bytes()
    transmitted, _, dump = raw.rpartition(b"RESULTS:")
    text = dump.strip().decode()
    return transmitted, [int(text[i:i + 8], 16) for i in range(0, len(text), 8)]
