"""AHCI (Serial ATA AHCI 1.3): the ich9-ahci host bus adapter, and the ATA disk and
ATAPI CD-ROM that sit on its ports."""
