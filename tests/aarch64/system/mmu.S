// Stage 1 translation at EL1, with the granule chosen at assembly time (-defsym
// GRANULE_64K=1 for 64 KiB, else 4 KiB): identity blocks for the UART and RAM,
// a page at VA 0x80000000 over a data page, a read-only page, a page without the
// access flag, TTBR1 (the upper VA range) over the same data page, an unmapped VA,
// AT S1E1R/W into PAR_EL1, and a TLBI after a remap.
        .include "common.inc"
        .global _start

        .ifdef GRANULE_64K
        .equ PAGE, 0x10000
        .equ TSZ, 22            // 42-bit VAs: the walk starts at level 2
        .equ TG0, 1 << 14       // 64 KiB
        .equ TG1, 3 << 30
        .equ BLOCK_SHIFT, 29    // level 2 blocks: 512 MiB
        .else
        .equ PAGE, 0x1000
        .equ TSZ, 25            // 39-bit VAs: the walk starts at level 1
        .equ TG0, 0 << 14
        .equ TG1, 2 << 30
        .equ BLOCK_SHIFT, 30    // level 1 blocks: 1 GiB
        .endif
        .equ DESC_TABLE, 3
        .equ DESC_PAGE, 3
        .equ DESC_BLOCK, 1
        .equ AF, 1 << 10
        .equ ATTR_DEV, 0 << 2
        .equ ATTR_MEM, 1 << 2 | 3 << 8    // AttrIndx 1, inner shareable
        .equ AP_RO, 2 << 6

        .text
_start:
        ldr     x0, =stack_top
        mov     sp, x0
        adr     x0, vectors
        msr     vbar_el1, x0
        // top table: entry 0 device block (UART), entry for RAM a block, entry
        // for 0x80000000 a table of pages
        ldr     x10, =top_table
        ldr     x0, =(0x00000000 | DESC_BLOCK | AF | ATTR_DEV)
        str     x0, [x10]
        ldr     x0, =(0x40000000 | DESC_BLOCK | AF | ATTR_MEM)
        mov     x1, #(0x40000000 >> BLOCK_SHIFT)
        str     x0, [x10, x1, lsl #3]
        ldr     x11, =leaf_table
        orr     x0, x11, #DESC_TABLE
        .ifndef GRANULE_64K     // 4 KiB: one more level between the blocks and pages
        ldr     x14, =mid_table
        str     x0, [x14]
        orr     x0, x14, #DESC_TABLE
        .endif
        mov     x1, #(0x80000000 >> BLOCK_SHIFT)
        str     x0, [x10, x1, lsl #3]
        mov     x15, x0         // what points at the pages, for TTBR1's table
        // leaf pages: [0] data RW, [1] data RO, [2] data without AF
        ldr     x12, =data_page
        ldr     x0, =(DESC_PAGE | AF | ATTR_MEM)
        orr     x0, x0, x12
        str     x0, [x11]
        ldr     x1, =AP_RO
        orr     x0, x0, x1
        str     x0, [x11, #8]
        ldr     x0, =(DESC_PAGE | ATTR_MEM)
        orr     x0, x0, x12
        str     x0, [x11, #16]
        // the upper range: TTBR1's top table points at the same leaf table in its
        // last-but-one entry
        ldr     x13, =top_table1
        str     x15, [x13, #8]
        // data
        ldr     x0, =0x1122334455667788
        str     x0, [x12]
        // the regime
        ldr     x0, =0x04ff           // attr0 device nGnRnE, attr1 normal WB
        msr     mair_el1, x0
        ldr     x0, =(TSZ | TSZ << 16 | TG0 | TG1 | 1 << 8 | 1 << 10 | 3 << 12 | 1 << 24 | 1 << 26 | 3 << 28 | 2 << 32)
        msr     tcr_el1, x0
        msr     ttbr0_el1, x10
        msr     ttbr1_el1, x13
        isb
        mrs     x0, sctlr_el1
        orr     x0, x0, #1
        msr     sctlr_el1, x0
        isb
        puts    s_on
        ldr     x20, =0x80000000
        ldr     x0, [x20]
        bl      print_hex
        add     x21, x20, #PAGE
        ldr     x0, [x21]
        bl      print_hex
        ldr     x22, =(0xFFFFFFFFFFFFFFFF << (64 - TSZ) | 1 << BLOCK_SHIFT)
        ldr     x0, [x22]
        bl      print_hex
        bl      newline
        // a write through the RW page shows in the data page and through TTBR1
        ldr     x0, =0xabcdef
        str     x0, [x20, #8]
        ldr     x0, [x22, #8]
        bl      print_hex
        bl      newline
        // faults: write to the RO page, read without AF, unmapped VA, fetch
        str     x0, [x21]
        add     x23, x21, #PAGE
        ldr     x0, [x23]
        ldr     x24, =0xc0000000
        ldr     x0, [x24]
        add     x25, x23, #PAGE
        ldr     x0, [x25]
        // AT: a mapped VA, the RO page for writing, an unmapped VA
        // (the output address of a hit; F and the fault status of a miss)
        at      s1e1r, x20
        mrs     x0, par_el1
        ubfx    x0, x0, #12, #36
        bl      print_hex
        at      s1e1w, x21
        mrs     x0, par_el1
        and     x0, x0, #0x7f
        bl      print_hex
        at      s1e1r, x24
        mrs     x0, par_el1
        and     x0, x0, #0x7f
        bl      print_hex
        bl      newline
        // remap page 0 read-only, TLBI, the write faults now
        ldr     x0, [x11]
        ldr     x1, =AP_RO
        orr     x0, x0, x1
        str     x0, [x11]
        dsb     ishst
        lsr     x1, x20, #12
        tlbi    vae1is, x1
        dsb     ish
        isb
        str     x0, [x20]
        b       power_off

        .section .rodata
s_on:   .asciz "MMU on\n"

        .section .bss
        .balign PAGE
top_table:      .space PAGE
top_table1:     .space PAGE
leaf_table:     .space PAGE
mid_table:      .space PAGE
data_page:      .space PAGE
        .space 4096
stack_top:
