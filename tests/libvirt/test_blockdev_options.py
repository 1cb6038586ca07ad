"""-blockdev as libvirt writes it: a protocol node under a format node becomes one
drive that ``-device ...,drive=NODE`` finds (pemu/block/blockdev_options.py)."""

from __future__ import annotations

import pytest

from pemu.block.blockdev_options import blockdev_drives
from pemu.qemuopts.json_options import parse_option_value
from pemu.qemuopts.keyval import OptionError

STORAGE = ('{"driver":"file","filename":"/img/d.qcow2","node-name":"libvirt-1-storage",'
           '"auto-read-only":true,"discard":"unmap","cache":{"direct":true,"no-flush":false}}')
FORMAT = ('{"node-name":"libvirt-1-format","read-only":false,"driver":"qcow2",'
          '"file":"libvirt-1-storage","backing":null}')


def nodes(*texts: str) -> list[dict[str, str]]:
    return [parse_option_value(t, option="blockdev", nullable=("backing",)) for t in texts]


def test_libvirts_node_pair_is_one_drive():
    drives = blockdev_drives(nodes(STORAGE, FORMAT))
    assert list(drives) == ["libvirt-1-format"]  # the storage node is not a drive
    drive = drives["libvirt-1-format"]
    assert drive["driver"] == "qcow2" and drive["file.filename"] == "/img/d.qcow2"
    assert drive["discard"] == "unmap" and drive["cache.direct"] == "on"
    assert drive["read-only"] == "off"
    assert "backing" not in drive and "file" not in drive


def test_a_lone_file_node_is_a_raw_drive():
    drives = blockdev_drives(nodes('{"driver":"file","filename":"/d.raw","node-name":"n0"}'))
    assert drives == {"n0": {"driver": "file", "filename": "/d.raw", "node-name": "n0"}}


@pytest.mark.parametrize(("texts", "named"), [
    ((FORMAT,), "Cannot find device=libvirt-1-storage"),
    ((STORAGE, STORAGE), "Duplicate nodes"),
    (('{"driver":"file","filename":"/d"}',), "'node-name' is missing"),
    ((STORAGE, FORMAT.replace('"backing":null', '"backing":"other"')), "backing=other"),
    (('{"driver":"raw","node-name":"r","file":"q"}',
      '{"driver":"qcow2","node-name":"q","file":"f"}',
      '{"driver":"file","node-name":"f","filename":"/d"}'), "over a 'qcow2' node"),
])
def test_what_pemu_cannot_open_is_refused(texts, named):
    with pytest.raises(OptionError, match=named):
        blockdev_drives(nodes(*texts))


def test_null_only_where_allowed():
    with pytest.raises(OptionError, match="'driver' has a null value"):
        parse_option_value('{"driver":null,"node-name":"n"}', option="blockdev",
                           nullable=("backing",))
