"""Arm boards under TCG: QEMU's ``virt`` for AArch64 (virt.py)."""
