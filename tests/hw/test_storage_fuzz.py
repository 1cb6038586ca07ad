"""Random guest input to the SCSI layer and to AHCI must never raise out of the device:
a bad CDB is CHECK CONDITION, a bad command slot is a task file error or a completion."""

from __future__ import annotations

import struct

from ahci_driver import AhciDriver
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pci_driver import RAM_BASE, PCIMachine

from pemu.block import open_drive
from pemu.hw.ahci import regs as R
from pemu.hw.ahci.ata import AtaDisk
from pemu.hw.ahci.atapi import AtapiCd
from pemu.hw.ahci.hba import AhciController
from pemu.hw.scsi import sense as K
from pemu.hw.scsi.disk import ScsiDisk

FUZZ = settings(max_examples=100, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])
addr = st.one_of(st.integers(RAM_BASE - 0x100, RAM_BASE + 0x10000),
                 st.integers(0, 2**64 - 1))


@FUZZ
@given(cdb=st.binary(min_size=0, max_size=32), cdrom=st.booleans(),
       out_len=st.integers(0, 4096), in_len=st.integers(0, 4096))
def test_scsi_units_answer_any_cdb(tmp_path_factory, cdb, cdrom, out_len, in_len):
    path = tmp_path_factory.mktemp("fuzz") / "disk"
    path.write_bytes(b"\x22" * 65536)
    backend = open_drive({"file": str(path), "format": "raw"})
    try:
        unit = ScsiDisk(backend, cdrom=cdrom)
        data_in = bytearray(in_len)
        r = unit.execute(cdb, [memoryview(bytearray(out_len))], [memoryview(data_in)])
        assert r.status in (K.GOOD, K.CHECK_CONDITION)
        assert 0 <= r.data_in <= in_len
        assert (r.status == K.CHECK_CONDITION) == bool(r.sense)
    finally:
        backend.close()


@FUZZ
@given(port=st.integers(0, 1), header=st.tuples(st.integers(0, 2**32 - 1), addr),
       cfis=st.binary(min_size=64, max_size=64), acmd=st.binary(min_size=16, max_size=16),
       prds=st.lists(st.tuples(addr, st.integers(0, 2**32 - 1)), max_size=4),
       fis_type=st.sampled_from([R.FIS_H2D, 0x00, 0x34]),
       command=st.sampled_from([0x25, 0x35, 0x60, 0x61, 0xEC, 0xA0, 0xA1, 0x06, 0x2F,
                                0xEA, 0x00, 0xFF]))
def test_ahci_survives_random_command_slots(tmp_path_factory, port, header, cfis, acmd,
                                            prds, fis_type, command):
    path = tmp_path_factory.mktemp("fuzz") / "disk"
    path.write_bytes(b"\x33" * 65536)
    backend = open_drive({"file": str(path), "format": "raw"})
    try:
        m = PCIMachine()
        ctrl = AhciController(m.space)
        ctrl.attach(AtaDisk(backend), 0)
        ctrl.attach(AtapiCd(backend), 1)
        m.host.root_bus.plug(ctrl, 6 << 3)
        drv = AhciDriver(m, 6 << 3)
        drv.w(R.HBA_GHC, R.GHC_AE | R.GHC_IE)
        drv.start_port(port)
        clb, _ = drv.ports[port]
        table = m.ram.alloc(0x200, 128)
        fis = bytes([fis_type, cfis[1], command]) + cfis[3:]
        m.space.write(table, fis)
        m.space.write(table + R.CT_ACMD, acmd)
        m.space.write(table + R.CT_PRDT, b"".join(struct.pack("<QII", a, 0, n)
                                                  for a, n in prds))
        dw0, ctba = header
        if ctba % 2:  # half the time a table in RAM, with a sane PRD count
            ctba, dw0 = table, (dw0 & 0xFFFF) | len(prds) << 16
        m.space.write(clb, struct.pack("<IIQ", dw0, 0, ctba))
        drv.pw(port, R.PX_SACT, 1)
        drv.pw(port, R.PX_CI, 1)
        backend.drain()
        is_ = drv.pr(port, R.PX_IS)
        done = not drv.pr(port, R.PX_CI) & 1
        assert done or is_ & R.IS_TFES, hex(is_)  # completed, or a task file error
        drv.pw(port, R.PX_CMD, 0)  # the host recovers by stopping the port
        assert drv.pr(port, R.PX_CI) == 0 and drv.pr(port, R.PX_SACT) == 0
    finally:
        backend.close()
