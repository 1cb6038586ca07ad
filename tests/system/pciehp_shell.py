"""What Linux's PCIe hot-plug driver (pciehp) does to a slot, as busybox shell for
guests whose kernel lacks it (Debian's riscv64: ``# CONFIG_HOTPLUG_PCI is not set``):
16-bit reads and writes of a port's sysfs config file.

``PCIEHP_FUNCTIONS`` defines, for the port whose config file is ``$P``: ``rd16 OFF``,
``wr16 OFF VALUE``, ``find_exp`` (sets ``X`` to the offset of the PCI Express
capability, id 0x10, by walking the capability list; 0 if none) and ``slot TAG``
(prints ``SLOT TAG ctl=<Slot Control> sta=<Slot Status>`` in decimal).  No single
quotes, so that the text fits in a single-quoted argument (virsh's guest-exec)."""

from __future__ import annotations

SLTCTL, SLTSTA = 24, 26  # offsets in the PCI Express capability
SLTCTL_PCC, SLTCTL_PIC = 0x400, 0x300
PIC_ON, PIC_BLINK, PIC_OFF = 0x100, 0x200, 0x300
SLTSTA_ABP, SLTSTA_PDC, SLTSTA_CC, SLTSTA_PDS = 0x1, 0x8, 0x10, 0x40

PCIEHP_FUNCTIONS = (
    "rd16() { echo $(( $(od -An -tu2 -j $1 -N 2 $P) )); }; "
    "wr16() { printf \"\\\\$(printf %o $(($2 & 255)))\\\\$(printf %o $(($2 >> 8)))\" "
    "| dd of=$P bs=2 seek=$(($1 / 2)) count=1 conv=notrunc 2>/dev/null; }; "
    "find_exp() { X=$(( $(rd16 52) & 255 )); "
    "while [ $X -ne 0 ] && [ $(( $(rd16 $X) & 255 )) -ne 16 ]; "
    "do X=$(( $(rd16 $X) >> 8 )); done; }; "
    f"slot() {{ echo \"SLOT $1 ctl=$(rd16 $((X + {SLTCTL}))) "
    f"sta=$(rd16 $((X + {SLTSTA})))\"; }}")

# pciehp's enable: acknowledge the slot's events, power on with the indicator on
POWER_ON = (f"wr16 $((X + {SLTSTA})) $(rd16 $((X + {SLTSTA}))); "
            f"wr16 $((X + {SLTCTL})) $(( ($(rd16 $((X + {SLTCTL}))) & "
            f"~{SLTCTL_PCC | SLTCTL_PIC}) | {PIC_ON} ))")
# every PCIe port's slot powered on (a hot-plugged card shows up on the next rescan)
POWER_ON_EVERY_PORT = (
    f"{PCIEHP_FUNCTIONS}; for d in /sys/bus/pci/devices/*; do "
    "[ \"$(cat $d/class)\" = 0x060400 ] || continue; P=$d/config; find_exp; "
    f"[ $X -ne 0 ] && {{ {POWER_ON}; }}; done")
