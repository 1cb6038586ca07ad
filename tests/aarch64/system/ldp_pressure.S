// A block of Linux's alloc_init_pte (6.12 arm64): three LDPs keep many values live,
// then SUB x19, x5, x19. The native backend's register allocator used to evict the
// SUB's first input while loading its second and reload it from a slot never written
// (pemu/accel/tcg/backend/x86_64/regalloc.py, RegAlloc.evict); x19 came out wrong.
        .include "common.inc"
        .global _start
_start:
        ldr     x0, =0x40100000
        mov     sp, x0
        sub     sp, sp, #512
        ldr     x0, =0x1111222233334444
        str     x0, [sp, #224]
        ldr     x0, =0xffff00001ff00000
        str     x0, [sp, #232]
        ldr     x0, =0x5ff00000
        str     x0, [sp, #240]
        ldr     x0, =0x0000000012345678
        str     x0, [sp, #248]
        str     x0, [sp, #256]
        str     x0, [sp, #264]
        ldr     x22, =0xffff00001ff09000
        bl      blk
        mov     x0, x19
        bl      print_hex
        mov     x0, x5
        bl      print_hex
        mov     x0, x2
        bl      print_hex
        mov     x0, x0
        bl      newline
        b       power_off
blk:
        ldp     x3, x19, [sp, #224]
        ubfx    x0, x22, #21, #9
        ldp     x5, x2, [sp, #240]
        ldp     x6, x21, [sp, #256]
        ubfx    x1, x19, #21, #9
        sub     x0, x0, x1
        sub     x19, x5, x19
        add     x5, x22, x19
        add     x2, x2, x0, lsl #3
        cmp     x3, x22
        b.eq    1f
        mov     x19, x19
        ret
1:      ret
