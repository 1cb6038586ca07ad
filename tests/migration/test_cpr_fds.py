"""The cpr channel's descriptor list without processes: how a version 2 header splits
the descriptors between RAM and backends, what it refuses, and how the new pemu's
backends take what was handed over (pemu/fdpass/handover.py)."""

from __future__ import annotations

import json
import os

import pytest

from pemu.fdpass import handover, open_path
from pemu.migration.cpr import CprError, _parse


def _pipes(n: int) -> list[int]:
    fds = []
    for _ in range(n):
        r, w = os.pipe()
        os.close(w)
        fds.append(r)
    return fds


def _header(blocks: int, backends: list[tuple[str, str, int]], version: int = 2) -> bytes:
    return json.dumps({"magic": "pemu-cpr", "version": version,
                       "blocks": [{"name": f"ram{i}", "size": 4096} for i in range(blocks)],
                       "fds": [{"kind": k, "key": key, "count": c}
                               for k, key, c in backends]}).encode()


def test_descriptors_after_the_rams_go_to_their_backends():
    fds = _pipes(4)
    header, handed = _parse(_header(1, [("tap", "n0", 2), ("chardev", "c0", 1)]), fds)
    assert header["blocks"] == [("ram0", 4096)]
    assert [(h.kind, h.key, h.fds) for h in handed] == [("tap", "n0", fds[1:3]),
                                                         ("chardev", "c0", fds[3:])]
    for fd in fds:
        os.close(fd)


@pytest.mark.parametrize("backends, nfds, why", [
    ([("tap", "n0", 2)], 2, "1 RAM blocks and 1 backends but 2 descriptors"),
    ([("vhost", "x", 1)], 2, "but 2 descriptors"),  # a kind this pemu does not take
    ([("tap", "n0", 0)], 1, "but 1 descriptors"),
])
def test_a_descriptor_list_that_does_not_add_up_is_refused(backends, nfds, why):
    with pytest.raises(CprError, match=why):
        _parse(_header(1, backends), list(range(100, 100 + nfds)))


def test_version_1_headers_still_read_and_unknown_versions_are_refused():
    header, handed = _parse(_header(1, [], version=1), [7])
    assert header["blocks"] == [("ram0", 4096)] and handed == []
    with pytest.raises(CprError, match="version 3, this pemu reads 1, 2"):
        _parse(_header(1, [], version=3), [7])


def test_a_disk_image_is_taken_by_name_and_access_mode(tmp_path):
    image = tmp_path / "disk.raw"
    image.write_bytes(b"handed over")
    fd = os.open(image, os.O_RDWR)
    image.unlink()  # by name it is gone
    handover.adopt([handover.Handover(handover.FILE,
                                      handover.file_key(str(image), os.O_RDWR), [fd])])
    try:
        with pytest.raises(FileNotFoundError):  # read-only is another open
            open_path(str(image), os.O_RDONLY)
        created = open_path(str(image), os.O_RDWR | os.O_CREAT)  # a new file
        assert os.pread(created, 11, 0) == b""
        os.close(created)
        image.unlink()
        got = open_path(str(image), os.O_RDWR)
        assert os.pread(got, 11, 0) == b"handed over"
        with pytest.raises(FileNotFoundError):  # taken once
            open_path(str(image), os.O_RDWR)
        os.close(got)
    finally:
        assert handover.close_untaken() == []
