"""NVMe 1.4 controller on the PCI layer (``-device nvme``, ``-device nvme-ns``)."""
