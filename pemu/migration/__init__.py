"""Device state for savevm, loadvm and migration, generated from the declarations.

Every device declares its state once, next to its code, as a ``VMState`` field list
(pemu/hw/core.py).  This package turns that declaration into a byte stream and back:
``save_device(dev)`` writes one section, ``load_device(dev, data)`` checks a section
completely and only then applies it.  Nothing here is written per device.

Layers: ``wire`` (bounded reading of untrusted bytes), ``section`` (the framing: name,
version, length, CRC), ``fields`` (one field kind to bytes and back), ``vmstate``
(device <-> section, with the checks and the all-or-nothing commit).
"""

from pemu.migration.errors import MigrationError
from pemu.migration.vmstate import load_device, save_device

__all__ = ["MigrationError", "load_device", "save_device"]
