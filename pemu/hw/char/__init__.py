"""Character devices seen by the guest (UARTs)."""

from pemu.hw.char.serial16550 import Serial16550

__all__ = ["Serial16550"]
