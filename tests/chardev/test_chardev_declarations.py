"""Chardev backends declare themselves in the type registry; -chardev and QMP's
chardev-add both take their backends and options from there."""

from __future__ import annotations

import os

import pytest

from pemu.chardev import ChardevRegistry, FileChardev, PtyChardev
from pemu.chardev.backend import BackendFactory, backend_names
from pemu.monitor.chardev_commands import chardev_add
from pemu.monitor.errors import QMPError
from pemu.qemuopts.keyval import OptionError
from pemu.qom import registry


def test_each_backend_declares_its_options():
    infos = registry.types(registry.CHARDEV)
    assert {t.name for t in infos} >= {"null", "file", "pty", "socket", "stdio"}
    for info in infos:
        assert isinstance(info.factory, BackendFactory), info.name
        names = [p.name for p in info.properties]
        assert names[:2] == ["id", "mux"] and len(set(names)) == len(names), info.name
    assert backend_names() == sorted(t.name for t in infos)
    assert registry.help_listing(registry.CHARDEV).splitlines()[1:] == \
        [f"  {name}" for name in backend_names()]


def test_declared_defaults_are_what_the_backend_gets(tmp_path):
    path = tmp_path / "log"
    path.write_bytes(b"old ")
    reg = ChardevRegistry()
    f = reg.add({"backend": "file", "id": "f", "path": str(path)})  # append: off
    f.write(b"new")
    reg.close_all()
    assert path.read_bytes() == b"new"
    reg = ChardevRegistry()
    f = reg.add({"backend": "file", "id": "f", "path": str(path), "append": "on"})
    f.write(b"+")
    reg.close_all()
    assert path.read_bytes() == b"new+"


def test_options_of_another_backend_are_refused():
    with pytest.raises(OptionError, match="-chardev file: Invalid parameter 'port'"):
        ChardevRegistry().add({"backend": "file", "id": "x", "path": "/dev/null",
                               "port": "1"})
    with pytest.raises(OptionError, match="mux"):
        ChardevRegistry().add({"backend": "null", "id": "x", "mux": "perhaps"})


def test_qmp_chardev_add_follows_the_declarations(tmp_path):
    reg = ChardevRegistry()
    try:
        with pytest.raises(QMPError, match="'spicevmc' is not supported .*null"):
            chardev_add(reg, "r", {"type": "spicevmc", "data": {}})
        with pytest.raises(QMPError, match="no parameter 'size'"):
            chardev_add(reg, "n", {"type": "null", "data": {"size": 4}})
        with pytest.raises(QMPError, match="backend.data.out"):
            chardev_add(reg, "f", {"type": "file", "data": {}})
        out = tmp_path / "out"
        assert chardev_add(reg, "f", {"type": "file", "data": {"out": str(out)}}) == {}
        assert isinstance(reg.get("f"), FileChardev)
        answer = chardev_add(reg, "p", {"type": "pty", "data": {}})
        pty = reg.get("p")
        assert isinstance(pty, PtyChardev) and answer == {"pty": pty.path}
        assert os.path.exists(pty.path)
    finally:
        reg.close_all()
