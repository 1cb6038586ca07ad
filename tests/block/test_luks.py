"""LUKS, standalone and inside qcow2, both directions with qemu-img."""

from __future__ import annotations

import pytest

from pemu.block import BlockError, open_drive, open_image

from .conftest import QEMU_LUKS_TIMEABLE_HASH, pattern_data

SECRET = ["--object", "secret,id=sec0,data=hunter2"]


def luks_opts(path: str) -> str:
    return f"driver=luks,key-secret=sec0,file.filename={path}"


def qcow2_opts(path: str) -> str:
    return f"driver=qcow2,encrypt.key-secret=sec0,file.filename={path}"


@pytest.fixture
def data_file(tmp_path):
    p = tmp_path / "data.raw"
    p.write_bytes(pattern_data(3 << 20, seed=11))
    return str(p)


@pytest.mark.parametrize("cipher", ["aes-256", "aes-128"])
def test_qemu_luks_reads_in_pemu(tmp_path, qemu_img, data_file, cipher):
    img = str(tmp_path / "q.luks")
    qemu_img("convert", *SECRET, "-O", "luks", "-o",
             f"key-secret=sec0,iter-time=100,cipher-alg={cipher},{QEMU_LUKS_TIMEABLE_HASH}",
             data_file, img)
    node = open_image(img, secrets={"sec0": b"hunter2"}, options={"key-secret": "sec0"},
                      read_only=True)
    assert node.read(0, 3 << 20) == open(data_file, "rb").read()
    node.close()
    with pytest.raises(BlockError, match="Invalid password"):
        open_image(img, secrets={"sec0": b"wrong"}, options={"key-secret": "sec0"})


def test_pemu_luks_reads_in_qemu(tmp_path, qemu_img, pemu_img, data_file):
    img = str(tmp_path / "p.luks")
    pemu_img("convert", *SECRET, "-O", "luks", "-o", "key-secret=sec0,iter-time=10",
             data_file, img)
    qemu_img("compare", *SECRET, "--image-opts", luks_opts(img),
             f"driver=raw,file.filename={data_file}")
    ours = pemu_img.json("info", "--output=json", img)
    theirs = qemu_img("info", "--output=json", img, json_out=True)
    ours.pop("actual-size")
    theirs.pop("actual-size")
    assert ours == theirs


def test_qemu_qcow2_luks_reads_and_writes_in_pemu(tmp_path, qemu_img, pemu_img, data_file):
    img = str(tmp_path / "q.qcow2")
    qemu_img("convert", *SECRET, "-O", "qcow2", "-o",
             "encrypt.format=luks,encrypt.key-secret=sec0,encrypt.iter-time=100", data_file, img)
    be = open_drive({"file": img, "format": "qcow2", "encrypt.key-secret": "sec0"},
                    secrets={"sec0": b"hunter2"})
    assert be.pread(0, 3 << 20) == open(data_file, "rb").read()
    be.pwrite(4097, b"pemu was here")
    be.close()
    qemu_img("check", *SECRET, "--image-opts", qcow2_opts(img))
    out = tmp_path / "out.raw"
    qemu_img("convert", *SECRET, "--image-opts", qcow2_opts(img), "-O", "raw", str(out))
    expect = bytearray(open(data_file, "rb").read())
    expect[4097:4097 + 13] = b"pemu was here"
    assert out.read_bytes() == expect
    assert pemu_img("info", img)[1] == qemu_img("info", img).stdout.replace(
        qemu_img("info", img).stdout.split("disk size: ")[1].split("\n")[0],
        pemu_img("info", img)[1].split("disk size: ")[1].split("\n")[0])


def test_pemu_qcow2_luks_reads_in_qemu(tmp_path, qemu_img, pemu_img, data_file):
    img = str(tmp_path / "p.qcow2")
    pemu_img("convert", *SECRET, "-O", "qcow2", "-o",
             "encrypt.format=luks,encrypt.key-secret=sec0,encrypt.iter-time=10,"
             "cluster_size=4096", data_file, img)
    qemu_img("check", *SECRET, "--image-opts", qcow2_opts(img))
    qemu_img("compare", *SECRET, "--image-opts", qcow2_opts(img),
             f"driver=raw,file.filename={data_file}")


def test_secret_from_file_and_missing_secret(tmp_path, pemu_img, data_file):
    secret = tmp_path / "pw"
    secret.write_bytes(b"hunter2")
    img = str(tmp_path / "f.luks")
    pemu_img("create", "--object", f"secret,id=k,file={secret}", "-f", "luks", "-o",
             "key-secret=k,iter-time=10", img, "1M")
    status, _, err = pemu_img("convert", "--image-opts", f"driver=luks,file.filename={img}",
                              str(tmp_path / "x.raw"), expect=1)
    assert "key-secret" in err
    pemu_img("convert", "--object", f"secret,id=k,file={secret}", "--image-opts",
             f"driver=luks,key-secret=k,file.filename={img}", str(tmp_path / "x.raw"))
