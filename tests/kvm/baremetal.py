"""Build pemu's bare-metal x86 test guests with the host's binutils, at test time.

The code lives in bench/baremetal.py, which the KVM benchmark uses too (bench/ must not
import from tests/); the tests keep importing it from here.
"""

from __future__ import annotations

from bench.baremetal import GUEST_DIR, LOAD_ADDR, assemble, have_binutils

__all__ = ["GUEST_DIR", "LOAD_ADDR", "assemble", "have_binutils"]
