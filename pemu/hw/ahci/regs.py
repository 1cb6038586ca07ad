"""AHCI register offsets and bits (AHCI 1.3.1, sections 3.1 and 3.3) and the FIS layouts
(SATA 3.x, section 10.5) the HBA reads and writes."""

from __future__ import annotations

# generic host control
HBA_CAP, HBA_GHC, HBA_IS, HBA_PI, HBA_VS = 0x00, 0x04, 0x08, 0x0C, 0x10
HBA_CAP2, HBA_BOHC = 0x24, 0x28
PORTS_BASE = 0x100
PORT_STRIDE = 0x80

CAP_S64A = 1 << 31  # 64-bit addressing
CAP_SNCQ = 1 << 30  # native command queuing
CAP_SCLO = 1 << 24  # command list override
CAP_ISS_GEN1 = 1 << 20  # interface speed: 1.5 Gbps
CAP_SAM = 1 << 18  # AHCI only (no legacy IDE mode): GHC.AE is always set
CAP_NCS_SHIFT = 8  # command slots - 1
GHC_HR = 1 << 0
GHC_IE = 1 << 1
GHC_AE = 1 << 31
VERSION_1_0 = 0x00010000

# port registers
PX_CLB, PX_CLBU, PX_FB, PX_FBU = 0x00, 0x04, 0x08, 0x0C
PX_IS, PX_IE, PX_CMD, PX_TFD, PX_SIG = 0x10, 0x14, 0x18, 0x20, 0x24
PX_SSTS, PX_SCTL, PX_SERR, PX_SACT, PX_CI, PX_SNTF = 0x28, 0x2C, 0x30, 0x34, 0x38, 0x3C

IS_DHRS = 1 << 0  # a D2H Register FIS arrived
IS_PSS = 1 << 1  # a PIO Setup FIS arrived
IS_SDBS = 1 << 3  # a Set Device Bits FIS arrived
IS_TFES = 1 << 30  # task file error

CMD_ST = 1 << 0
CMD_SUD = 1 << 1
CMD_POD = 1 << 2
CMD_CLO = 1 << 3
CMD_FRE = 1 << 4
CMD_FR = 1 << 14
CMD_CR = 1 << 15
CMD_WRITABLE = (CMD_ST | CMD_SUD | CMD_POD | CMD_FRE | 1 << 24 | 1 << 25 | 1 << 26
                | 1 << 27)  # + ATAPI, DLAE, ALPE, ASP
CMD_CCS_SHIFT = 8

SSTS_PRESENT = 0x113  # DET 3 (device and phy), SPD 1 (Gen1), IPM 1 (active)
SCTL_DET_MASK = 0xF
SCTL_DET_COMRESET = 1

SIG_ATA = 0x00000101
SIG_ATAPI = 0xEB140101

# the received-FIS area: where each FIS type lands
RX_PIO_SETUP = 0x20
RX_D2H = 0x40
RX_SDB = 0x58
RX_FIS_SIZE = 0x100

FIS_H2D = 0x27
FIS_D2H = 0x34
FIS_SDB = 0xA1
FIS_PIO_SETUP = 0x5F

# the command list header (32 bytes per slot) and command table
HEADER_SIZE = 32
HEADER_ATAPI = 1 << 5
HEADER_WRITE = 1 << 6
CT_CFIS = 0x00
CT_ACMD = 0x40
CT_PRDT = 0x80
PRD_SIZE = 16
CFIS_SIZE = 64
ACMD_SIZE = 16
NUM_SLOTS = 32
