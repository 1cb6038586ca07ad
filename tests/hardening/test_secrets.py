"""-object secret with the AES-256-CBC encrypted form, one store for every user."""

from __future__ import annotations

import base64
import os

import pytest

from pemu.block import BlockError, open_drive, open_image
from pemu.crypto.objects import ObjectStore, user_objects
from pemu.crypto.secret import SecretError, encrypt_aes256_cbc
from tests.block.conftest import QEMU_LUKS_TIMEABLE_HASH, PemuImg

PASSWORD = b"correct horse battery staple"


@pytest.fixture
def master(tmp_path):
    """A 32-byte master key in a file, and the password encrypted with it."""
    key, iv = os.urandom(32), os.urandom(16)
    path = tmp_path / "master.key"
    path.write_bytes(base64.b64encode(key))
    ciphertext = base64.b64encode(encrypt_aes256_cbc(key, iv, PASSWORD)).decode()
    return {"key_file": str(path), "iv": base64.b64encode(iv).decode(),
            "data": ciphertext, "key": key}


def objects(master) -> list[str]:
    return [f"secret,id=master,file={master['key_file']},format=base64",
            f"secret,id=sec0,keyid=master,format=base64,data={master['data']},"
            f"iv={master['iv']}"]


def store_of(texts: list[str]) -> ObjectStore:
    from pemu.qemuopts.keyval import parse_keyval
    store = ObjectStore()
    for text in texts:
        store.add(parse_keyval(text, implied_key="qom-type"))
    return store


def test_encrypted_secret_is_decrypted_with_its_key(master):
    assert store_of(objects(master)).secret("sec0") == PASSWORD


def test_raw_and_base64_plain_secrets(tmp_path):
    f = tmp_path / "pw"
    f.write_bytes(b"from-a-file")
    store = store_of(["secret,id=a,data=hello", f"secret,id=b,file={f}",
                      "secret,id=c,data=aGk=,format=base64"])
    assert [store.secret(i) for i in "abc"] == [b"hello", b"from-a-file", b"hi"]


@pytest.mark.parametrize("bad, message", [
    ("secret,id=x,data=a,iv=AAAA", "only valid with 'keyid'"),
    ("secret,id=x,data=a,keyid=k", "'iv' is required"),
    ("secret,id=x,data=a,file=/f", "mutually exclusive"),
    ("secret,id=x", "one of them is required"),
    ("secret,id=x,data=!!,format=base64", "invalid base64"),
    ("secret,id=x,data=a,format=hex", "format must be raw or base64"),
    ("secret,id=x,data=a,keyid=nokey,iv=AAAAAAAAAAAAAAAAAAAAAA==", "No secret with id 'nokey'"),
    ("secret,id=x,data=a,bogus=1", "Property 'bogus' not found"),
    ("secret,id=x,file=/nonexistent/pw", "Unable to read secret file"),
])
def test_bad_secret_objects_are_clear_errors(bad, message):
    with pytest.raises(SecretError, match=message):
        store_of(["secret,id=k,data=" + "k" * 32, bad])


def test_wrong_key_or_short_key_is_refused(master):
    # fixed values, so that the wrong key's garbage is certain to fail the padding check
    key, iv = bytes(range(32)), bytes(16)
    data = base64.b64encode(encrypt_aes256_cbc(key, iv, PASSWORD)).decode()
    enc = f"keyid=k,data={data},format=base64,iv={base64.b64encode(iv).decode()}"
    right = base64.b64encode(key).decode()
    assert store_of([f"secret,id=k,data={right},format=base64",
                     f"secret,id=s,{enc}"]).secret("s") == PASSWORD
    with pytest.raises(SecretError, match="padding"):
        store_of(["secret,id=k,data=" + "w" * 32, f"secret,id=s,{enc}"])
    with pytest.raises(SecretError, match="32 bytes"):
        store_of(["secret,id=short,data=0123456789",
                  f"secret,id=s,keyid=short,data={master['data']},format=base64,"
                  f"iv={master['iv']}"])


def test_qemu_and_pemu_agree_on_encrypted_secrets(tmp_path, master, qemu_img, capsys):
    """qemu-img makes a LUKS image whose password is an encrypted secret; pemu-img
    opens it with the same --object options, and -drive does through the store."""
    img = str(tmp_path / "disk.luks")
    obj = [a for text in objects(master) for a in ("--object", text)]
    qemu_img("create", *obj, "-f", "luks", "-o",
             f"key-secret=sec0,iter-time=10,{QEMU_LUKS_TIMEABLE_HASH}", img, "1M")
    data = os.urandom(4096)
    src = tmp_path / "src.raw"
    src.write_bytes(data + bytes((1 << 20) - 4096))
    qemu_img("convert", *obj, "--target-image-opts", "-n", str(src),
             f"driver=luks,key-secret=sec0,file.filename={img}")
    PemuImg(capsys)("compare", *obj, "--image-opts",
                    f"driver=luks,key-secret=sec0,file.filename={img}", str(src))
    store = user_objects()
    from pemu.qemuopts.keyval import parse_keyval
    store.sync([parse_keyval(t, implied_key="qom-type") for t in objects(master)])
    try:
        backend = open_drive({"file": img, "format": "luks", "key-secret": "sec0"})
        assert backend.pread(0, 4096) == data
        backend.close()
    finally:
        store.remove("sec0")
        store.remove("master")
    with pytest.raises(BlockError, match="No secret with id 'sec0'"):
        open_image(img, options={"key-secret": "sec0"}, secrets=store.secrets())
