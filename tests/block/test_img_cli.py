"""pemu-img subcommands against qemu-img: same syntax, same output, same results."""

from __future__ import annotations

import json

import pytest

from pemu.block import open_image
from pemu.block.qcow2 import create_qcow2

from .conftest import pattern_data, run_pemu_img_subprocess


def _drop_volatile(info):
    """actual-size depends on file-system block allocation of two different writers."""
    if isinstance(info, list):
        return [_drop_volatile(i) for i in info]
    return {k: v for k, v in info.items() if k != "actual-size"}


@pytest.fixture
def chain(tmp_path, qemu_img, qemu_io):
    base = str(tmp_path / "base.qcow2")
    top = str(tmp_path / "top.qcow2")
    qemu_img("create", "-f", "qcow2", base, "64M")
    qemu_io(base, "write -P 1 0 1M", "write -P 2 10M 64k", "write -z 20M 1M")
    qemu_img("create", "-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2", top, "128M")
    qemu_io(top, "write -P 3 512k 1M", "write -c -P 4 30M 64k")
    qemu_img("snapshot", "-c", "snap1", top)
    return base, top


def test_info_json_and_human_match_qemu(chain, pemu_img, qemu_img):
    base, top = chain
    for args in (["--output=json", top], ["--output=json", "--backing-chain", top]):
        ours = pemu_img.json("info", *args)
        theirs = qemu_img("info", *args, json_out=True)
        assert _drop_volatile(ours) == _drop_volatile(theirs)
    ours = pemu_img("info", top)[1].splitlines()
    theirs = qemu_img("info", top).stdout.splitlines()
    assert [x for x in ours if not x.startswith("disk size")] == \
        [x for x in theirs if not x.startswith("disk size")]


def test_map_matches_qemu(chain, pemu_img, qemu_img):
    base, top = chain
    for img in (base, top):
        ours = json.loads(pemu_img("map", "--output=json", img)[1])
        theirs = qemu_img("map", "--output=json", img, json_out=True)
        assert ours == theirs
        q = qemu_img("map", img, check=False)
        status, out, err = pemu_img("map", img, expect=q.returncode)
        assert out == q.stdout
        if q.returncode:   # compressed clusters cannot be shown as offsets
            assert "compressed clusters" in err


def test_check_clean_output_and_json(chain, pemu_img, qemu_img):
    base, top = chain
    for img in (base, top):
        status, out, _ = pemu_img("check", img)
        assert out == qemu_img("check", img).stdout
        ours = pemu_img.json("check", "--output=json", img)
        theirs = qemu_img("check", "--output=json", img, json_out=True)
        assert ours == theirs


def test_check_leaks_exit_code_and_repair(tmp_path, pemu_img, qemu_img):
    img = str(tmp_path / "leaky.qcow2")
    create_qcow2(img, 16 << 20)
    node = open_image(img)
    node.write(0, b"x" * 70000)
    leaked = node.refcounts.alloc(3)  # allocated but never referenced: leaked
    node.file.write(leaked, bytes(3 << 16))
    node.close()
    q = qemu_img("check", img, check=False)
    assert q.returncode == 3
    status, out, err = pemu_img("check", img, expect=3)
    assert out == q.stdout
    assert "Leaked cluster" in err
    assert pemu_img.json("check", "--output=json", img, expect=3) == \
        json.loads(qemu_img("check", "--output=json", img, check=False).stdout)
    status, out, _ = pemu_img("check", "-r", "leaks", img, expect=0)
    assert "3 leaked clusters" in out and "No errors were found" in out
    qemu_img("check", img)


def test_check_corruption_exit_code(tmp_path, pemu_img, qemu_img):
    img = str(tmp_path / "bad.qcow2")
    create_qcow2(img, 16 << 20)
    node = open_image(img)
    node.write(0, b"y" * 65536)
    host = node.l2_table(node.l1[0] & ((1 << 56) - 512))[0] & ((1 << 56) - 512)
    node.refcounts.update(host >> 16, 1, -1)       # refcount 0 while in use
    node.close()
    assert qemu_img("check", img, check=False).returncode == 2
    status, out, err = pemu_img("check", img, expect=2)
    assert "errors were found" in out and "ERROR" in err
    pemu_img("check", "-r", "all", img, expect=0)
    qemu_img("check", img)


def test_check_raw_not_supported(tmp_path, pemu_img):
    raw = tmp_path / "r.img"
    raw.write_bytes(bytes(4096))
    status, _, err = pemu_img("check", "-f", "raw", str(raw), expect=63)
    assert "does not support checks" in err


@pytest.mark.parametrize("out_fmt,extra", [
    ("qcow2", []), ("qcow2", ["-c"]), ("qcow2", ["-c", "-o", "compression_type=zstd"]),
    ("qcow2", ["-o", "cluster_size=4096,refcount_bits=8"]), ("raw", []),
    ("qcow2", ["-o", "compat=0.10"]),
])
def test_convert_round_trip_qemu_checks(tmp_path, chain, pemu_img, qemu_img, out_fmt, extra):
    base, top = chain
    out = str(tmp_path / f"out.{out_fmt}")
    pemu_img("convert", "-O", out_fmt, *extra, top, out)
    if out_fmt == "qcow2":
        qemu_img("check", out)
    assert qemu_img("compare", top, out).returncode == 0
    back = str(tmp_path / "back.qcow2")
    pemu_img("convert", "-O", "qcow2", out, back)
    qemu_img("compare", top, back)


def test_convert_progress_and_sparse(tmp_path, pemu_img, qemu_img):
    src = tmp_path / "src.raw"
    src.write_bytes(pattern_data(8 << 20, seed=3))
    out = str(tmp_path / "o.raw")
    status, stdout, _ = pemu_img("convert", "-p", "-S", "64k", "-f", "raw", "-O", "raw",
                                 str(src), out)
    assert "(100.00/100%)" in stdout
    qemu_img("compare", "-f", "raw", "-F", "raw", str(src), out)
    import os
    assert os.stat(out).st_blocks * 512 < os.path.getsize(out)


def test_convert_existing_target_n(tmp_path, pemu_img, qemu_img):
    src = tmp_path / "s.raw"
    src.write_bytes(pattern_data(2 << 20, seed=5))
    dst = str(tmp_path / "d.qcow2")
    qemu_img("create", "-f", "qcow2", dst, "2M")
    qemu_img("convert", "-f", "raw", "-O", "qcow2", "-n", str(tmp_path / "s.raw"), dst)
    other = tmp_path / "o.raw"
    other.write_bytes(pattern_data(2 << 20, seed=6))
    pemu_img("convert", "-n", "-f", "raw", "-O", "qcow2", str(other), dst)
    qemu_img("compare", "-F", "raw", dst, str(other))
    qemu_img("check", dst)


def test_compare_exit_codes_match(tmp_path, chain, pemu_img, qemu_img, qemu_io):
    base, top = chain
    copy = str(tmp_path / "copy.qcow2")
    qemu_img("convert", "-O", "qcow2", top, copy)
    status, out, _ = pemu_img("compare", top, copy)
    assert out == "Images are identical.\n"
    qemu_io(copy, "write -P 9 100k 1k")
    q = qemu_img("compare", top, copy, check=False)
    status, out, _ = pemu_img("compare", top, copy, expect=1)
    assert out == q.stdout and q.returncode == 1
    assert pemu_img("compare", "-s", base, top, expect=1)[1] == \
        qemu_img("compare", "-s", base, top, check=False).stdout
    assert pemu_img("compare", top, str(tmp_path / "none"), expect=2)[0] == 2


def test_create_output_and_qemu_accepts(tmp_path, pemu_img, qemu_img):
    for opts in ("cluster_size=512,refcount_bits=1", "lazy_refcounts=on",
                 "preallocation=metadata", "preallocation=full,cluster_size=2M",
                 "compression_type=zstd", "extended_l2=on", "compat=0.10"):
        ours = str(tmp_path / "a.qcow2")
        theirs = str(tmp_path / "b.qcow2")
        o = pemu_img("create", "-f", "qcow2", "-o", opts, ours, "10M")[1]
        assert o == qemu_img("create", "-f", "qcow2", "-o", opts, theirs, "10M").stdout \
            .replace(theirs, ours)
        qemu_img("check", ours)
        assert _drop_volatile(qemu_img("info", "--output=json", ours, json_out=True)) == \
            _drop_volatile(qemu_img("info", "--output=json", theirs, json_out=True)) | \
            {"filename": ours}
    o = pemu_img("create", "-f", "raw", str(tmp_path / "r.raw"), "1000")[1]
    assert o == f"Formatting '{tmp_path / 'r.raw'}', fmt=raw size=1024\n"


def test_create_rejects_missing_backing_format(tmp_path, pemu_img):
    base = str(tmp_path / "b.qcow2")
    pemu_img("create", "-f", "qcow2", base, "1M")
    status, _, err = pemu_img("create", "-f", "qcow2", "-b", base, str(tmp_path / "t.qcow2"),
                              expect=1)
    assert "without backing format" in err


def test_resize_grow_and_shrink(tmp_path, pemu_img, qemu_img, qemu_io):
    img = str(tmp_path / "r.qcow2")
    qemu_img("create", "-f", "qcow2", img, "4M")
    qemu_io(img, "write -P 7 0 4M")
    assert pemu_img("resize", img, "+1G")[1] == "Image resized.\n"
    assert qemu_img("info", "--output=json", img, json_out=True)["virtual-size"] == \
        (1 << 30) + (4 << 20)
    status, _, err = pemu_img("resize", img, "2M", expect=1)
    assert "--shrink" in err
    pemu_img("resize", "--shrink", img, "2M")
    qemu_img("check", img)
    qemu_img("resize", img, "4M")
    out = qemu_io(img, "read -P 7 0 2M", "read -P 0 2M 2M")
    assert "read 2097152/2097152" in out
    raw = str(tmp_path / "r.raw")
    pemu_img("create", "-f", "raw", raw, "1M")
    pemu_img("resize", "-f", "raw", raw, "3M")
    import os
    assert os.path.getsize(raw) == 3 << 20


def test_snapshot_commands_interop(tmp_path, pemu_img, qemu_img, qemu_io):
    img = str(tmp_path / "s.qcow2")
    qemu_img("create", "-f", "qcow2", img, "4M")
    qemu_io(img, "write -P 1 0 4M")
    pemu_img("snapshot", "-c", "a", img)
    qemu_io(img, "write -P 2 0 1M")
    qemu_img("snapshot", "-c", "b", img)
    listing = pemu_img("snapshot", "-l", img)[1]
    assert listing == qemu_img("snapshot", "-l", img).stdout
    pemu_img("snapshot", "-a", "a", img)
    qemu_io(img, "read -P 1 0 4M")
    pemu_img("snapshot", "-d", "a", img)
    qemu_img("check", img)
    qemu_img("snapshot", "-a", "b", img)
    qemu_io(img, "read -P 2 0 1M", "read -P 1 1M 3M")
    status, _, err = pemu_img("snapshot", "-a", "nosuch", img, expect=1)
    assert "nosuch" in err


def test_rebase_safe_and_unsafe_commit(tmp_path, pemu_img, qemu_img, qemu_io):
    b1, b2, top = (str(tmp_path / n) for n in ("b1.qcow2", "b2.qcow2", "top.qcow2"))
    qemu_img("create", "-f", "qcow2", b1, "4M")
    qemu_io(b1, "write -P 1 0 4M")
    qemu_img("create", "-f", "qcow2", "-b", "b1.qcow2", "-F", "qcow2", b2)
    qemu_io(b2, "write -P 2 1M 1M")
    qemu_img("create", "-f", "qcow2", "-b", "b2.qcow2", "-F", "qcow2", top)
    qemu_io(top, "write -P 3 0 64k")
    flat = str(tmp_path / "flat.raw")
    qemu_img("convert", "-O", "raw", top, flat)
    pemu_img("rebase", "-b", "b1.qcow2", "-F", "qcow2", top)
    qemu_img("check", top)
    qemu_img("compare", "-F", "raw", top, flat)
    assert qemu_img("info", "--output=json", top, json_out=True)["backing-filename"] == \
        "b1.qcow2"
    pemu_img("rebase", "-u", "-b", "b2.qcow2", "-F", "qcow2", top)
    qemu_img("compare", "-F", "raw", top, flat)
    assert pemu_img("commit", top)[1] == "Image committed.\n"
    qemu_img("check", b2)
    qemu_img("compare", "-F", "raw", b2, flat)
    qemu_img("compare", "-F", "raw", top, flat)


def test_amend_compat_and_lazy_refcounts(tmp_path, pemu_img, qemu_img, qemu_io):
    img = str(tmp_path / "a.qcow2")
    qemu_img("create", "-f", "qcow2", img, "4M")
    qemu_io(img, "write -P 1 0 1M", "write -z 1M 1M")
    pemu_img("amend", "-o", "compat=0.10", img)
    info = qemu_img("info", "--output=json", img, json_out=True)
    assert info["format-specific"]["data"]["compat"] == "0.10"
    qemu_img("check", img)
    qemu_io(img, "read -P 1 0 1M", "read -P 0 1M 3M")
    pemu_img("amend", "-o", "compat=1.1,lazy_refcounts=on", img)
    info = qemu_img("info", "--output=json", img, json_out=True)
    assert info["format-specific"]["data"]["lazy-refcounts"] is True
    qemu_img("check", img)


@pytest.mark.parametrize("args", [
    ["-O", "qcow2", "--size", "1G"], ["-O", "raw", "--size", "1000"],
    ["-O", "qcow2", "-o", "cluster_size=512,refcount_bits=1", "--size", "100M"],
    ["--output=json", "-O", "qcow2", "--size", "3G"],
])
def test_measure_size_matches_qemu(pemu_img, qemu_img, args):
    assert pemu_img("measure", *args)[1] == qemu_img("measure", *args).stdout


def test_measure_image_matches_qemu(chain, pemu_img, qemu_img):
    base, top = chain
    for fmt in ("raw", "qcow2"):
        assert pemu_img("measure", "-O", fmt, top)[1] == \
            qemu_img("measure", "-O", fmt, top).stdout


def test_dd_matches_qemu(tmp_path, chain, pemu_img, qemu_img):
    base, top = chain
    a, b = str(tmp_path / "a.raw"), str(tmp_path / "b.raw")
    pemu_img("dd", f"if={top}", f"of={a}", "bs=64k", "count=40", "skip=3")
    qemu_img("dd", f"if={top}", f"of={b}", "bs=64k", "count=40", "skip=3")
    assert open(a, "rb").read() == open(b, "rb").read()


def test_runs_as_module_with_errors_not_tracebacks(tmp_path):
    p = run_pemu_img_subprocess("info", str(tmp_path / "missing.qcow2"))
    assert p.returncode == 1
    assert p.stderr.startswith("pemu-img: Could not open") and "Traceback" not in p.stderr
    p = run_pemu_img_subprocess("frobnicate")
    assert p.returncode == 1 and "Command not found" in p.stderr


def test_convert_with_backing_copies_only_the_top(tmp_path, chain, pemu_img, qemu_img):
    base, top = chain
    out = str(tmp_path / "out.qcow2")
    pemu_img("convert", "-O", "qcow2", "-B", base, "-F", "qcow2", top, out)
    info = qemu_img("info", "--output=json", out, json_out=True)
    assert info["backing-filename"] == base
    qemu_img("check", out)
    qemu_img("compare", top, out)
    top_map = qemu_img("map", "--output=json", out, json_out=True)
    assert all(e["depth"] == 1 or not e["data"] for e in top_map
               if e["start"] < 512 << 10)     # below 512k only the base has data


def test_convert_from_internal_snapshot(tmp_path, chain, pemu_img, qemu_img, qemu_io):
    base, top = chain
    qemu_io(top, "write -P 9 0 2M")     # the active image moves on; the snapshot must not
    ours, theirs = str(tmp_path / "a.raw"), str(tmp_path / "b.raw")
    pemu_img("convert", "-l", "snapshot.name=snap1", "-O", "raw", top, ours)
    qemu_img("convert", "-l", "snapshot.name=snap1", "-O", "raw", top, theirs)
    assert open(ours, "rb").read() == open(theirs, "rb").read()
    assert open(ours, "rb").read(1 << 20) != b"\x09" * (1 << 20)


def test_map_raw_with_holes_matches_qemu(tmp_path, pemu_img, qemu_img):
    raw = tmp_path / "holes.raw"
    with open(raw, "wb") as f:
        f.truncate(4 << 20)
        f.seek(1 << 20)
        f.write(b"data" * 2000)
    for out in ("json", "human"):
        assert pemu_img("map", f"--output={out}", "-f", "raw", str(raw))[1] == \
            qemu_img("map", f"--output={out}", "-f", "raw", str(raw)).stdout
