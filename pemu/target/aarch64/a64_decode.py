"""The A64 encodings pemu translates, as a decode table (see pemu/target/decode).

Each pattern NAME runs ``trans_NAME(ctx, a)`` of insn_*.py; a handler returns False for
the reserved values of its fields (then the word is an undefined instruction).
Field names follow the Arm ARM's encoding diagrams.
"""

A64_DECODE = r"""
%adr_imm   5:s19 29:2      # immhi:immlo

# -- data processing, immediate -------------------------------------------------------
ADR        0 .. 10000 ................... rd:5 %adr_imm
ADRP       1 .. 10000 ................... rd:5 %adr_imm
ADDSUB_imm sf:1 op:1 s:1 100010 sh:1 imm:12 rn:5 rd:5
LOGIC_imm  sf:1 opc:2 100100 n:1 immr:6 imms:6 rn:5 rd:5
MOVW       sf:1 opc:2 100101 hw:2 imm:16 rd:5
BITFIELD   sf:1 opc:2 100110 n:1 immr:6 imms:6 rn:5 rd:5
EXTR       sf:1 00 100111 n:1 0 rm:5 imms:6 rn:5 rd:5

# -- branches, exceptions, system -----------------------------------------------------
B_imm      op:1 00101 imm:s26
CB         sf:1 011010 op:1 imm:s19 rt:5
TB         b5:1 011011 op:1 b40:5 imm:s14 rt:5
B_cond     0101010 0 imm:s19 0 cond:4
BR         1101011 0000 11111 000000 rn:5 00000
BLR        1101011 0001 11111 000000 rn:5 00000
RET        1101011 0010 11111 000000 rn:5 00000
SVC        11010100 000 imm:16 000 01
BRK        11010100 001 imm:16 000 00
HINT       11010101 00000011 0010 op:7 11111         # NOP, YIELD, PAuth and BTI hints
CLREX      11010101 00000011 0011 .... 010 11111
BARRIER    11010101 00000011 0011 crm:4 1 op:2 11111 # DSB DMB ISB SB
SYS        1101010100 0 01 op1:3 crn:4 crm:4 op2:3 rt:5
MSR_imm    1101010100 0 00 op1:3 0100 crm:4 op2:3 11111   # DAIFSet/Clr, SPSel (EL1)
ERET       1101011 0100 11111 000000 11111 00000
HVC        11010100 000 imm:16 000 10
SMC        11010100 000 imm:16 000 11
MSR_reg    1101010100 0 1 sysreg:15 rt:5
MRS        1101010100 1 1 sysreg:15 rt:5

# -- data processing, register --------------------------------------------------------
LOGIC_reg    sf:1 opc:2 01010 shift:2 n:1 rm:5 imm6:6 rn:5 rd:5
ADDSUB_shift sf:1 op:1 s:1 01011 shift:2 0 rm:5 imm6:6 rn:5 rd:5
ADDSUB_ext   sf:1 op:1 s:1 01011 00 1 rm:5 option:3 imm3:3 rn:5 rd:5
ADC          sf:1 op:1 s:1 11010000 rm:5 000000 rn:5 rd:5
CCMP         sf:1 op:1 1 11010010 rm:5 cond:4 i:1 0 rn:5 0 nzcv:4
CSEL         sf:1 op:1 0 11010100 rm:5 cond:4 0 o2:1 rn:5 rd:5
DP2          sf:1 0 0 11010110 rm:5 opcode:6 rn:5 rd:5
DP1          sf:1 1 0 11010110 00000 opcode:6 rn:5 rd:5
DP3          sf:1 00 11011 op31:3 rm:5 o0:1 ra:5 rn:5 rd:5

# -- loads and stores -----------------------------------------------------------------
LDST_uimm  size:2 111 v:1 01 opc:2 imm:12 rn:5 rt:5
LDST_imm9  size:2 111 v:1 00 opc:2 0 imm:s9 idx:2 rn:5 rt:5
LDST_reg   size:2 111 v:1 00 opc:2 1 rm:5 option:3 s:1 10 rn:5 rt:5
LDR_lit    opc:2 011 v:1 00 imm:s19 rt:5
LDST_pair  opc:2 101 v:1 0 idx:2 l:1 imm:s7 rt2:5 rn:5 rt:5
LDST_excl  size:2 001000 o2:1 l:1 o1:1 rs:5 o0:1 rt2:5 rn:5 rt:5
LSE_ATOMIC size:2 111 0 00 a:1 r:1 1 rs:5 o3:1 opc:3 00 rn:5 rt:5
"""
