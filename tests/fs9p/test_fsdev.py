"""-fsdev and -virtfs as the command line reads them (no emulator run)."""

from __future__ import annotations

import pytest

from pemu.cli.system_config import parse_system_argv
from pemu.fs9p.fsdev import FsdevSpec, expand_virtfs, parse_fsdev
from pemu.qemuopts.keyval import OptionError


def test_virtfs_is_an_fsdev_and_a_virtio_9p_pci():
    cfg = parse_system_argv(["-virtfs", "local,path=/srv,mount_tag=tag1,"
                             "security_model=mapped-xattr,readonly=on"], "pemu")
    assert cfg.devices == [{"driver": "virtio-9p-pci", "fsdev": "tag1", "mount_tag": "tag1"}]
    assert parse_fsdev(cfg.fsdevs[0]) == FsdevSpec("tag1", "/srv", "mapped-xattr",
                                                   readonly=True)
    fsdev, device = expand_virtfs({"fsdriver": "local", "path": "/srv", "mount_tag": "t",
                                   "security_model": "none", "id": "f0"})
    assert fsdev["id"] == "f0" and device["fsdev"] == "f0" and "mount_tag" not in fsdev


def test_fsdev_modes_and_writeout():
    spec = parse_fsdev({"fsdriver": "local", "id": "f", "path": "/srv",
                        "security_model": "mapped", "fmode": "0640", "dmode": "0750",
                        "writeout": "immediate"})
    assert (spec.fmode, spec.dmode, spec.writeout_immediate) == (0o640, 0o750, True)


@pytest.mark.parametrize("argv, words", [
    (["-fsdev", "local,id=f,path=/srv,security_model=none,fmode=0644"],
     "fmode is only valid for mapped security modes"),
    (["-fsdev", "local,id=f,path=/srv,security_model=none,multidevs=remap"], "multidevs"),
    (["-fsdev", "local,id=f,path=/srv,security_model=none,readonly=maybe"], "readonly"),
    (["-virtfs", "local,path=/a,mount_tag=t,security_model=none",
      "-virtfs", "local,path=/b,mount_tag=t,security_model=none"],
     "duplicate or invalid fsdev id: t"),
    (["-virtfs", "local,path=/a,mount_tag=t,security_model=none,bogus=1"],
     "Invalid parameter 'bogus'"),
])
def test_bad_options_name_the_option(argv, words):
    with pytest.raises(OptionError) as e:
        parse_system_argv(argv, "pemu")
    assert str(e.value).startswith(f"pemu: -{argv[-2][1:]} ") and words in str(e.value)
