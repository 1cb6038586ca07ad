"""Helpers shared by the device tests: a capture chardev, an IRQ probe, waiting."""

from __future__ import annotations

import time

import pytest

from pemu.chardev.base import Chardev
from pemu.hw.core import IRQLine


class CaptureChardev(Chardev):
    """Records guest output; tests inject input with ``feed`` as a host would."""

    def __init__(self) -> None:
        super().__init__("capture")
        self.output = bytearray()

    def write(self, data: bytes) -> None:
        self.output += data

    def feed(self, data: bytes) -> None:
        self._deliver(data)


def wait_until(predicate, timeout: float = 5.0) -> bool:
    """Poll for an event produced on the I/O thread (not a timing assertion)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.001)
    return predicate()


@pytest.fixture
def capture() -> CaptureChardev:
    return CaptureChardev()


@pytest.fixture
def irq() -> IRQLine:
    line = IRQLine(name="test")
    line.history = []  # type: ignore[attr-defined]
    line.connect(line.history.append)  # type: ignore[attr-defined]
    return line
