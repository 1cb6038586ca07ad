"""vmdk, vhdx and vpc images made by qemu-img read identically through pemu, and
convert to every writable format."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pemu.block import BlockError, open_image

from .conftest import pattern_data


@pytest.mark.parametrize("fmt,opts", [
    ("vmdk", []), ("vmdk", ["-o", "subformat=streamOptimized"]), ("vhdx", []),
    ("vpc", []), ("vpc", ["-o", "force_size=on"]), ("vpc", ["-o", "subformat=fixed"]),
])
def test_foreign_reads_identically(tmp_path, qemu_img, pemu_img, fmt, opts):
    src = tmp_path / "src.raw"
    src.write_bytes(pattern_data(5 << 20, seed=21))
    img = str(tmp_path / f"img.{fmt}")
    qemu_img("convert", "-f", "raw", "-O", fmt, *opts, str(src), img)
    flat = str(tmp_path / "flat.raw")
    qemu_img("convert", "-f", fmt, "-O", "raw", img, flat)
    node = open_image(img, fmt=fmt, read_only=True)
    assert node.size == len(open(flat, "rb").read())
    assert node.read(0, node.size) == open(flat, "rb").read()
    node.close()
    for out_fmt in ("qcow2", "raw"):
        out = str(tmp_path / f"out.{out_fmt}")
        pemu_img("convert", "-f", fmt, "-O", out_fmt, img, out)
        qemu_img("compare", "-f", fmt, img, out)
    with pytest.raises(BlockError, match="read-only"):
        open_image(img, fmt=fmt)


@pytest.mark.parametrize("fmt", ["vmdk", "vhdx", "vpc"])
def test_foreign_truncated_is_clear_error(tmp_path, qemu_img, fmt):
    src = tmp_path / "src.raw"
    src.write_bytes(pattern_data(2 << 20, seed=2))
    img = tmp_path / f"img.{fmt}"
    qemu_img("convert", "-f", "raw", "-O", fmt, str(src), str(img))
    data = img.read_bytes()
    for cut in (600, 70000, len(data) // 2):
        img.write_bytes(data[:cut])
        try:
            node = open_image(str(img), fmt=fmt, read_only=True)
            node.read(0, node.size)
            node.close()
        except BlockError:
            pass


@pytest.fixture(scope="module")
def foreign_images(tmp_path_factory):
    import shutil
    import subprocess
    if shutil.which("qemu-img") is None:
        pytest.skip("qemu-img (Debian qemu-utils) is not installed")
    d = tmp_path_factory.mktemp("foreign")
    src = d / "src.raw"
    src.write_bytes(pattern_data(2 << 20, seed=8))
    out = {}
    for name, fmt, opts in (("sparse.vmdk", "vmdk", []),
                            ("stream.vmdk", "vmdk", ["-o", "subformat=streamOptimized"]),
                            ("d.vhdx", "vhdx", []), ("d.vpc", "vpc", [])):
        subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", fmt, *opts, str(src),
                        str(d / name)], check=True)
        out[name] = (fmt, (d / name).read_bytes())
    return out


_HOT = {"vmdk": [(0, 2048), (-1536, 1536)], "vpc": [(0, 2048), (-512, 512)],
        "vhdx": [(64 << 10, 256), (192 << 10, 256), (1 << 20, 512), (2 << 20, 64)]}


@settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck))
@given(which=st.sampled_from(["sparse.vmdk", "stream.vmdk", "d.vhdx", "d.vpc"]),
       edits=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), min_size=1,
                      max_size=4))
def test_malformed_foreign_images(tmp_path_factory, foreign_images, which, edits):
    fmt, data = foreign_images[which]
    buf = bytearray(data)
    for where, value in edits:
        start, length = _HOT[fmt][where % len(_HOT[fmt])]
        start = start % len(buf)
        buf[min(len(buf) - 1, start + where % length)] = value
    path = tmp_path_factory.mktemp("fz") / f"bad.{fmt}"
    path.write_bytes(bytes(buf))
    try:
        node = open_image(str(path), fmt=fmt, read_only=True)
        node.read(0, min(node.size, 4 << 20))
        node.close()
    except BlockError:
        pass
    assert path.read_bytes() == bytes(buf)
