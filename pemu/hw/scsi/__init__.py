"""A small SCSI target layer (SBC disks, MMC CD-ROMs) shared by every transport:
virtio-scsi's request queues and AHCI's ATAPI packets carry the same CDBs."""
