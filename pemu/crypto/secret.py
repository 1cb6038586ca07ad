"""``-object secret,id=ID,data=...|file=...[,format=raw|base64][,keyid=KEY,iv=IV]``

With ``keyid`` the data is AES-256-CBC ciphertext (base64 when ``format=base64``),
decrypted with the 32-byte value of secret KEY and the base64 ``iv``: a manager can put
one master key in a file pemu reads once and pass every other password encrypted on the
command line, where ``ps`` would otherwise show it.  Without ``keyid``, ``format=base64``
decodes the data itself.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable

from pemu.qemuopts.keyval import OptionError

AES256_KEY_BYTES = 32
AES_BLOCK_BYTES = 16
_KEYS = {"qom-type", "id", "data", "file", "format", "keyid", "iv", "loaded"}


class SecretError(OptionError):
    """A secret that cannot be built or found (a clean message, never a traceback)."""


def _b64(text: bytes | str, what: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise SecretError(f"{what}: invalid base64 data") from None


def _read_file(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except (OSError, ValueError) as e:  # ValueError: a NUL in the name
        raise SecretError(f"Unable to read secret file '{path}': "
                          f"{getattr(e, 'strerror', None) or e}") from None


def decrypt_aes256_cbc(key: bytes, iv: bytes, ciphertext: bytes) -> bytes:
    """AES-256-CBC with PKCS#7 padding, as QEMU's secret object expects."""
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    if len(key) != AES256_KEY_BYTES:
        raise SecretError(f"Key should be {AES256_KEY_BYTES} bytes in length")
    if len(iv) != AES_BLOCK_BYTES:
        raise SecretError(f"IV should be {AES_BLOCK_BYTES} bytes in length")
    if not ciphertext or len(ciphertext) % AES_BLOCK_BYTES:
        raise SecretError("Ciphertext length must be a multiple of the AES block size")
    dec = Cipher(algorithms.AES(key), modes.CBC(iv)).decryptor()
    plain = dec.update(ciphertext) + dec.finalize()
    pad = plain[-1]
    if not 1 <= pad <= AES_BLOCK_BYTES or plain[-pad:] != bytes([pad]) * pad:
        # a wrong key or iv shows up here: say so rather than return garbage
        raise SecretError("Incorrect number of padding bytes: wrong key or iv?")
    return plain[:-pad]


def encrypt_aes256_cbc(key: bytes, iv: bytes, plaintext: bytes) -> bytes:
    """The inverse, for tools and tests that make encrypted secrets."""
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    pad = AES_BLOCK_BYTES - len(plaintext) % AES_BLOCK_BYTES
    enc = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    return enc.update(plaintext + bytes([pad]) * pad) + enc.finalize()


def build_secret(opts: dict[str, str], lookup: Callable[[str], bytes]) -> bytes:
    """The value of a secret object; ``lookup(id)`` gives another secret's value."""
    sid = opts.get("id")
    if not sid:
        raise SecretError("Parameter 'id' is missing")
    unknown = set(opts) - _KEYS
    if unknown:
        raise SecretError(f"secret '{sid}': Property '{sorted(unknown)[0]}' not found")
    fmt = opts.get("format", "raw")
    if fmt not in ("raw", "base64"):
        raise SecretError(f"secret '{sid}': format must be raw or base64, not '{fmt}'")
    if ("data" in opts) == ("file" in opts):
        raise SecretError(f"secret '{sid}': 'data' and 'file' are mutually exclusive, "
                          "and one of them is required")
    data = opts["data"].encode() if "data" in opts else _read_file(opts["file"])
    keyid = opts.get("keyid")
    if keyid is None:
        if "iv" in opts:
            raise SecretError(f"secret '{sid}': 'iv' is only valid with 'keyid'")
        return _b64(data, f"secret '{sid}'") if fmt == "base64" else data
    if "iv" not in opts:
        raise SecretError(f"secret '{sid}': 'iv' is required when 'keyid' is provided")
    if keyid == sid:
        raise SecretError(f"secret '{sid}': a secret cannot be its own key")
    key = lookup(keyid)
    iv = _b64(opts["iv"], f"secret '{sid}' iv")
    ciphertext = _b64(data, f"secret '{sid}'") if fmt == "base64" else data
    try:
        return decrypt_aes256_cbc(key, iv, ciphertext)
    except SecretError as e:
        raise SecretError(f"secret '{sid}': {e}") from None
