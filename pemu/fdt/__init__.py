"""Flattened device tree blobs for boards: see ``pemu.fdt.writer``."""

from pemu.fdt.writer import FDT, FDTError, Node

__all__ = ["FDT", "FDTError", "Node"]
