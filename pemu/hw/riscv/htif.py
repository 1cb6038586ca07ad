"""HTIF, the Berkeley host-target interface of spike, through ``tohost``/``fromhost``.

The guest writes a 64-bit command to ``tohost``: device in bits 63:56, command in
55:48, payload in 47:0.  pemu understands what ISA tests and simple bare-metal
programs use:
  * device 0 (syscall proxy), payload bit 0 set: exit with status payload >> 1
    (riscv-tests write 1 for pass and ``testnum << 1 | 1`` for a failure);
    payload bit 0 clear: a pointer to ``magic_mem`` (``SYS_write`` to fd 1/2 prints);
  * device 1 (console), command 1: print the byte in the payload;
    command 0: read a byte (answered with -1 style "no input": 0x100 is never sent).
Each handled command is acknowledged by writing ``fromhost`` and clearing ``tohost``.
"""

from __future__ import annotations

import struct
import sys
from collections.abc import Callable

from pemu.memory.address_space import AddressSpace

SYS_WRITE = 64


class HTIF:
    def __init__(self, space: AddressSpace, tohost: int, fromhost: int | None,
                 on_exit: Callable[[int], None], output=None) -> None:
        self.space = space
        self.tohost = tohost
        self.fromhost = fromhost
        self.on_exit = on_exit
        self.out = output  # a chardev, or None for stdout

    def _emit(self, data: bytes) -> None:
        if self.out is not None:
            self.out.write(data)
        else:
            sys.stdout.buffer.write(data)
            sys.stdout.buffer.flush()

    def watch(self, paddr: int, size: int, value: int) -> None:
        """Called after every store to the tohost page."""
        if not (paddr <= self.tohost < paddr + size or paddr < self.tohost + 8 <= paddr + size):
            return
        cmd = self.space.load(self.tohost, 8)
        if not cmd:
            return
        device, command, payload = cmd >> 56, (cmd >> 48) & 0xFF, cmd & ((1 << 48) - 1)
        reply = 0
        if device == 0 and command == 0:
            if payload & 1:
                self.on_exit(payload >> 1)
            else:
                self._syscall(payload)
                reply = 1
        elif device == 1 and command == 1:
            self._emit(bytes([payload & 0xFF]))
        self.space.store(self.tohost, 8, 0)
        if self.fromhost is not None:
            self.space.store(self.fromhost, 8, (device << 56) | (command << 48) | reply)

    def _syscall(self, addr: int) -> None:
        try:
            words = struct.unpack("<8Q", self.space.read(addr, 64))
            if words[0] == SYS_WRITE and words[1] in (1, 2) and words[3] <= 1 << 20:
                self._emit(self.space.read(words[2], words[3]))
                self.space.store(addr, 8, words[3])
            else:
                self.space.store(addr, 8, (-38) & 0xFFFF_FFFF_FFFF_FFFF)  # -ENOSYS
        except Exception as e:  # noqa: BLE001 - a bad guest pointer must not kill pemu
            print(f"pemu: htif: bad syscall block at 0x{addr:x}: {e}", file=sys.stderr)
