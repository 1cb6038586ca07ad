"""qcow2 format driver (see docs/BLOCK.md)."""

from .create import create_qcow2
from .driver import Qcow2Node, open_qcow2

__all__ = ["Qcow2Node", "create_qcow2", "open_qcow2"]
