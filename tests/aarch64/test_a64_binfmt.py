"""pemu-binfmt --arch aarch64: the register line matches arm64 ELF programs only."""

from __future__ import annotations

from pathlib import Path

import pytest

from pemu.guests import guest_file
from pemu.linux_user import binfmt


def _matches(fmt: binfmt.ForeignFormat, head: bytes) -> bool:
    return all(h & m == g & m for h, m, g in zip(head, fmt.mask, fmt.magic, strict=False))


def test_the_aarch64_entry_matches_arm64_programs_only() -> None:
    riscv, arm = Path(guest_file("riscv64/busybox")), Path(guest_file("aarch64/busybox"))
    if not (riscv.exists() and arm.exists()):
        pytest.skip("needs the shared riscv64 and aarch64 busybox")
    arm_head, riscv_head = arm.read_bytes()[:20], riscv.read_bytes()[:20]
    assert _matches(binfmt.AARCH64, arm_head) and not _matches(binfmt.AARCH64, riscv_head)
    assert _matches(binfmt.RISCV64, riscv_head) and not _matches(binfmt.RISCV64, arm_head)
    line = binfmt.register_line("pemu-aarch64", binfmt.AARCH64, "/usr/bin/pemu-aarch64", "P")
    assert line.startswith(":pemu-aarch64:M:0:\\x7f\\x45\\x4c\\x46") and line.endswith(":P")
    assert "\\xb7\\x00:" in line  # e_machine 183
