"""The PCI layer: config space, BARs, capabilities, INTx, MSI/MSI-X, buses and the
ECAM host bridge.  Shared by every board; a board creates a ``PCIHost`` (host.py) and
maps its ECAM and address windows, devices subclass ``PCIDevice`` (device.py)."""
