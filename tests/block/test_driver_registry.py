"""Block drivers declare themselves in the type registry; every list the user sees
(pemu-img --help and -O, -drive format=help, QMP's BlockdevDriver) and format probing
come from those declarations."""

from __future__ import annotations

import subprocess
import sys

import pytest

from pemu.block import open_drive, open_image
from pemu.block.driver_info import BlockDriverInfo
from pemu.block.drivers import (
    block_driver,
    block_drivers,
    creatable_formats,
    format_drivers,
    probe_head,
)
from pemu.block.errors import BlockError
from pemu.block.img.create import formatting_line
from pemu.block.overlay import snapshot_overlay
from pemu.block.raw import RawNode
from pemu.cli import system_x86_64
from pemu.monitor.commands import SCHEMA
from pemu.qom import registry

SECRET = "--object=secret,id=sec0,data=hunter2"


def _registered() -> list[str]:
    """Straight from the registry table, not through pemu.block.drivers."""
    return sorted(t.name for t in registry.types(registry.BLOCK_DRIVER))


def test_every_list_is_the_registry(pemu_img, capsys):
    names = _registered()
    assert {"file", "raw", "qcow2", "luks"} <= set(names)
    assert [d.name for d in block_drivers()] == names
    help_text = pemu_img("--help")[1]
    assert f"Supported formats: {' '.join(names)}\n" in help_text
    writable = sorted(d.name for d in format_drivers() if d.create is not None)
    assert creatable_formats() == writable and {"raw", "qcow2", "luks"} <= set(writable)
    assert f"Writable formats (create, convert -O): {' '.join(writable)}\n" in help_text
    capsys.readouterr()
    assert system_x86_64.main(["-drive", "format=help"]) == 0
    assert capsys.readouterr().out == f"Supported formats: {' '.join(names)}\n"
    assert SCHEMA.enums["BlockdevDriver"] == names


def test_protocols_are_no_formats():
    assert block_driver("file").protocol and block_driver("blkdebug").protocol
    formats = {d.name for d in format_drivers()}
    assert "file" not in formats and {"raw", "qcow2", "luks", "vmdk"} <= formats
    with pytest.raises(BlockError, match="protocol, not an image format"):
        open_image("/dev/null", fmt="file")


def _make_image(fmt: str, path: str, pemu_img, qemu_img) -> None:
    """pemu-img creates what it can write; qemu-img the read-only formats."""
    if block_driver(fmt).create is not None:
        extra = [SECRET, "-o", "key-secret=sec0,iter-time=10"] if fmt == "luks" else []
        pemu_img("create", "-q", "-f", fmt, *extra, path, "1M")
    else:
        qemu_img("create", "-q", "-f", fmt, path, "1M")


@pytest.mark.parametrize("fmt", [d.name for d in format_drivers()])
def test_probing_picks_each_format(fmt, tmp_path, pemu_img, qemu_img):
    path = str(tmp_path / f"image.{fmt}")
    _make_image(fmt, path, pemu_img, qemu_img)
    node = open_image(path, read_only=True, options={"no-io": "on"})
    try:
        assert node.format_name == fmt
    finally:
        node.close()
    # the oracle agrees that the file is an image of that format
    assert qemu_img("info", "--output=json", path, json_out=True)["format"] == fmt
    assert pemu_img.json("info", "--output=json", path)["format"] == fmt


def test_probe_scores_magic_over_raw():
    assert probe_head(b"QFI\xfb\x00\x00\x00\x03").name == "qcow2"
    assert probe_head(b"LUKS\xba\xbe\x00\x01").name == "luks"
    assert probe_head(b"conectix").name == "vpc"
    assert probe_head(b"hello world").name == "raw"
    assert probe_head(b"").name == "raw"


def test_a_new_format_is_one_declaration(tmp_path, monkeypatch, pemu_img):
    """Declaring a format (here in the test, as a module would) is all it takes for
    probing, -drive format= and pemu-img's lists to know it."""
    def open_shifted(file, **_kw):
        node = RawNode(file, offset=8)
        node.format_name = "shifted"
        return node

    info = BlockDriverInfo(name="shifted", kind=registry.BLOCK_DRIVER,
                           description="raw after an 8-byte magic",
                           probe=lambda head, _name: 100 if head.startswith(b"SHIFTED!") else 0,
                           open=open_shifted)
    monkeypatch.setitem(registry._TYPES, (registry.BLOCK_DRIVER, None, "shifted"), info)
    path = tmp_path / "img"
    path.write_bytes(b"SHIFTED!" + b"payload" + bytes(505))
    be = open_drive({"file": str(path)})  # probed
    assert be.node.format_name == "shifted" and be.pread(0, 7) == b"payload"
    be.close()
    be = open_drive({"file": str(path), "format": "shifted"})
    assert be.pread(0, 7) == b"payload"
    be.close()
    assert "shifted" in pemu_img("--help")[1].split("Supported formats:")[1].split("\n")[0]
    assert "shifted" not in creatable_formats()  # it declares no create entry point


def test_unknown_format_is_one_line(tmp_path, pemu_img, capsys):
    raw = str(tmp_path / "disk.raw")
    pemu_img("create", "-q", "-f", "raw", raw, "1M")
    _, out, err = pemu_img("create", "-f", "xyz", str(tmp_path / "x"), "1M", expect=1)
    assert (out, err) == ("", "pemu-img: Unknown file format 'xyz'\n")
    _, _, err = pemu_img("convert", "-O", "xyz", raw, str(tmp_path / "y"), expect=1)
    assert err == "pemu-img: Unknown file format 'xyz'\n"
    _, _, err = pemu_img("info", "-f", "xyz", raw, expect=1)
    assert err == f"pemu-img: Could not open '{raw}': Unknown driver 'xyz'\n"
    _, _, err = pemu_img("create", "-f", "vmdk", str(tmp_path / "v"), "1M", expect=1)
    assert err == "pemu-img: Format driver 'vmdk' does not support image creation\n"
    with pytest.raises(BlockError, match=r"^Unknown driver 'xyz'$"):
        open_drive({"file": raw, "format": "xyz"})
    with pytest.raises(BlockError, match=r"^Unknown driver 'nosuch'$"):
        open_drive({"file": raw, "driver": "nosuch"})
    for key in ("format", "driver"):
        p = subprocess.run([sys.executable, "-m", "pemu.cli.system_x86_64", "-drive",
                            f"file={raw},{key}=xyz", "-display", "none"],
                           capture_output=True, text=True, timeout=60)
        assert p.returncode == 1
        assert p.stderr == f"pemu-system-x86_64: -drive file={raw},{key}=xyz: " \
                           "Unknown driver 'xyz'\n"


@pytest.mark.parametrize("fmt,opts", [
    ("raw", "preallocation=falloc"),
    ("luks", "key-secret=sec0,cipher-alg=aes-256,iter-time=10,preallocation=falloc"),
    ("qcow2", "encryption=on,encrypt.key-secret=sec0,lazy_refcounts=on,refcount_bits=64"),
])
def test_formatting_line_follows_the_declaration(fmt, opts, tmp_path, pemu_img, qemu_img):
    ours, theirs = str(tmp_path / "a"), str(tmp_path / "b")
    out = pemu_img("create", "-f", fmt, SECRET, "-o", opts, ours, "1M")[1]
    expected = qemu_img("create", "-f", fmt, SECRET, "-o", opts, theirs, "1M").stdout
    assert out == expected.replace(theirs, ours)
    assert qemu_img("info", "--output=json", ours, json_out=True)["format"] == fmt


def test_formatting_line_prints_defaults_and_normalised_sizes():
    line = formatting_line("f", block_driver("qcow2"), 4096, {"cluster_size": "4k"})
    assert "cluster_size=4096 " in line and "refcount_bits=16" in line
    assert "compat=" not in line  # no default, not given: left out, as qemu-img does


def test_snapshot_overlay_keeps_the_base(tmp_path, qemu_img):
    base_path, top_path = str(tmp_path / "base.raw"), str(tmp_path / "top.qcow2")
    with open(base_path, "wb") as f:
        f.write(b"A" * 65536)
    base = open_image(base_path, fmt="raw", read_only=True)
    with pytest.raises(BlockError, match="Unknown driver 'xyz'"):
        snapshot_overlay(base, top_path, fmt="xyz")
    with pytest.raises(BlockError, match="No such file"):
        snapshot_overlay(base, top_path, create=False)
    top = snapshot_overlay(base, top_path)
    top.write(0, b"B" * 512)
    assert top.read(0, 1024) == b"B" * 512 + b"A" * 512
    top.close()
    with open(base_path, "rb") as f:
        assert f.read(512) == b"A" * 512
    info = qemu_img("info", "--output=json", top_path, json_out=True)
    assert info["format"] == "qcow2" and info["backing-filename"] == base_path


def test_drive_options_are_the_declared_properties(tmp_path):
    raw = tmp_path / "disk.raw"
    raw.write_bytes(b"x" * 512 + b"window" + bytes(506))
    with pytest.raises(BlockError, match=r"^Block format 'raw' does not support the "
                                         r"option 'foo'$"):
        open_drive({"file": str(raw), "format": "raw", "foo": "1"})
    with pytest.raises(BlockError, match="Block format 'raw' does not support"):
        open_drive({"file": str(raw), "foo": "1"})  # probed: the same check
    with pytest.raises(BlockError, match=r"^Block protocol 'file' does not support the "
                                         r"option 'bar'$"):
        open_drive({"file": str(raw), "format": "raw", "file.bar": "1"})
    with pytest.raises(BlockError, match="locking=on is not supported"):
        open_drive({"file": str(raw), "format": "raw", "file.locking": "on"})
    # declared options work: raw's offset/size window, file.locking=off
    be = open_drive({"file": str(raw), "format": "raw", "offset": "512", "size": "512",
                     "file.locking": "off"})
    assert be.size == 512 and be.pread(0, 6) == b"window"
    be.close()
