"""LUKS1 encryption: the standalone ``luks`` format and qcow2's encrypt.format=luks.

On-disk facts (LUKS1 spec): a 592-byte big-endian header, eight key slots each
holding the master key anti-forensically split into 4000 stripes and encrypted
with a PBKDF2-derived key; a PBKDF2 digest of the master key to recognise it.
Payload sectors are encrypted with the master key, 512-byte sectors, IV from the
sector number (plain64 / plain / essiv).  Crypto comes from the ``cryptography``
package.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import struct
import time
import uuid as uuidlib
from array import array
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC

from pemu.qom.registry import Property

from .driver_info import PREALLOCATION_OPTION, SIZE_OPTION, declare
from .errors import BlockError
from .file import FileNode
from .node import BlockNode, Extent

MAGIC = b"LUKS\xba\xbe"
_HDR = struct.Struct(">6sH32s32s32sII20s32sI40s")
_SLOT = struct.Struct(">II32sII")
HEADER_SIZE = _HDR.size + 8 * _SLOT.size     # 592
SLOT_ACTIVE, SLOT_DISABLED = 0x00AC71F3, 0x0000DEAD
STRIPES = 4000
SECTOR = 512
MAX_ITERATIONS = 20_000_000   # refuse absurd counts instead of hanging for hours
_HASHES = {"sha1": hashes.SHA1, "sha224": hashes.SHA224, "sha256": hashes.SHA256,
           "sha384": hashes.SHA384, "sha512": hashes.SHA512}
_KEY_SLOT_START = 4096
_ALIGN_SECTORS = 8


@dataclass
class KeySlot:
    active: bool
    iterations: int
    salt: bytes
    key_offset: int      # sectors
    stripes: int


@dataclass
class LuksHeader:
    cipher_name: str
    cipher_mode: str
    hash_spec: str
    payload_offset: int  # sectors
    key_bytes: int
    mk_digest: bytes
    mk_salt: bytes
    mk_iterations: int
    uuid: str
    slots: list[KeySlot]

    def pack(self) -> bytes:
        out = _HDR.pack(MAGIC, 1, self.cipher_name.encode(), self.cipher_mode.encode(),
                        self.hash_spec.encode(), self.payload_offset, self.key_bytes,
                        self.mk_digest, self.mk_salt, self.mk_iterations, self.uuid.encode())
        for s in self.slots:
            out += _SLOT.pack(SLOT_ACTIVE if s.active else SLOT_DISABLED, s.iterations, s.salt,
                              s.key_offset, s.stripes)
        return out


def _cstr(b: bytes, what: str) -> str:
    try:
        return b.split(b"\0", 1)[0].decode("ascii")
    except UnicodeDecodeError:
        raise BlockError(f"LUKS header: {what} is not ASCII") from None


def parse_luks_header(raw: bytes, area_size: int) -> LuksHeader:
    """Parse and validate a LUKS1 header; ``area_size`` bounds key material offsets."""
    if len(raw) < HEADER_SIZE or raw[:6] != MAGIC:
        raise BlockError("Volume is not in LUKS format")
    (_, version, cname, cmode, hspec, payload, key_bytes, digest, salt, mk_iters,
     uid) = _HDR.unpack_from(raw)
    if version != 1:
        raise BlockError(f"LUKS version {version} is not supported")
    h = LuksHeader(_cstr(cname, "cipher name"), _cstr(cmode, "cipher mode"),
                   _cstr(hspec, "hash spec"), payload, key_bytes, digest, salt, mk_iters,
                   _cstr(uid, "uuid"), [])
    if h.hash_spec not in _HASHES:
        raise BlockError(f"LUKS header: unsupported hash '{h.hash_spec}'")
    _cipher_spec(h.cipher_name, h.cipher_mode, key_bytes)
    if not 0 < mk_iters <= MAX_ITERATIONS:
        raise BlockError(f"LUKS header: master key iteration count {mk_iters} is invalid")
    header_sectors = -(-HEADER_SIZE // SECTOR)
    if payload * SECTOR > area_size or payload < header_sectors:
        raise BlockError(f"LUKS header: payload offset {payload * SECTOR} is outside the "
                         "volume")
    material = -(-key_bytes * STRIPES // SECTOR)
    for i in range(8):
        active, iters, ssalt, koff, stripes = _SLOT.unpack_from(raw, _HDR.size + i * _SLOT.size)
        if active not in (SLOT_ACTIVE, SLOT_DISABLED):
            raise BlockError(f"LUKS key slot {i} state {active:#x} is invalid")
        if stripes != STRIPES:
            raise BlockError(f"LUKS key slot {i}: stripes {stripes} is not {STRIPES}")
        if koff < header_sectors or koff + material > payload:
            raise BlockError(f"LUKS key slot {i}: key material offset {koff} overlaps the "
                             "header or payload")
        if active == SLOT_ACTIVE and not 0 < iters <= MAX_ITERATIONS:
            raise BlockError(f"LUKS key slot {i}: iteration count {iters} is invalid")
        h.slots.append(KeySlot(active == SLOT_ACTIVE, iters, ssalt, koff, stripes))
    for i, a in enumerate(h.slots):
        for b in h.slots[i + 1:]:
            if a.key_offset < b.key_offset + material and b.key_offset < a.key_offset + material:
                raise BlockError("LUKS key slots overlap")
    return h


def _cipher_spec(name: str, mode: str, key_bytes: int) -> tuple[str, str]:
    if name != "aes":
        raise BlockError(f"LUKS: cipher '{name}' is not supported (only aes)")
    chain, _, ivgen = mode.partition("-")
    if chain not in ("xts", "cbc") or not ivgen:
        raise BlockError(f"LUKS: cipher mode '{mode}' is not supported")
    if ivgen not in ("plain64", "plain") and not (chain == "cbc" and
                                                   ivgen.startswith("essiv:")):
        raise BlockError(f"LUKS: IV generator '{ivgen}' is not supported")
    if ivgen.startswith("essiv:") and ivgen[6:] not in _HASHES:
        raise BlockError(f"LUKS: ESSIV hash '{ivgen[6:]}' is not supported")
    sizes = (32, 48, 64) if chain == "xts" else (16, 24, 32)
    if key_bytes not in sizes:
        raise BlockError(f"LUKS: key size {key_bytes} is invalid for {name}-{mode}")
    return chain, ivgen


class SectorCipher:
    """Encrypts/decrypts runs of 512-byte sectors given the first sector number."""

    def __init__(self, name: str, mode: str, key: bytes) -> None:
        self.chain, self.ivgen = _cipher_spec(name, mode, len(key))
        self.key = key
        self._essiv = None
        if self.ivgen.startswith("essiv:"):
            h = hashlib.new(self.ivgen[6:], key).digest()
            self._essiv = Cipher(algorithms.AES(h), modes.ECB()).encryptor()

    def _iv(self, sector: int) -> bytes:
        if self.ivgen == "plain":
            sector &= 0xFFFFFFFF
        iv = struct.pack("<Q", sector) + bytes(8)
        if self._essiv is not None:
            iv = self._essiv.update(iv)
        return iv

    def _run(self, sector: int, data: bytes, encrypt: bool) -> bytes:
        if len(data) % SECTOR:
            raise BlockError("LUKS: encrypted I/O must be sector aligned")
        if self.chain == "xts" and len(data) > SECTOR:
            return self._xts_bulk(sector, data, encrypt)
        out = bytearray(len(data))
        mv = memoryview(data)
        for i in range(0, len(data), SECTOR):
            iv = self._iv(sector + i // SECTOR)
            mode = modes.XTS(iv) if self.chain == "xts" else modes.CBC(iv)
            c = Cipher(algorithms.AES(self.key), mode)
            op = c.encryptor() if encrypt else c.decryptor()
            out[i:i + SECTOR] = op.update(mv[i:i + SECTOR]) + op.finalize()
        return bytes(out)

    def _xts_bulk(self, sector: int, data: bytes, encrypt: bool) -> bytes:
        """XTS over many sectors with two ECB passes instead of a cipher object per
        sector: the tweak of block j of every sector is the encrypted sector IV times
        alpha**j in GF(2**128), computed for all sectors at once on one big integer
        (each 128-bit lane little-endian, as XTS defines it)."""
        n = len(data) // SECTOR
        half = len(self.key) // 2
        ivs = b"".join(self._iv(sector + i) for i in range(n))
        t = Cipher(algorithms.AES(self.key[half:]), modes.ECB()).encryptor().update(ivs)
        x = int.from_bytes(t, "little")
        top = int.from_bytes((bytes(15) + b"\x80") * n, "little")
        # interleave: block j of sector s is the 16 bytes at (s*32 + j)*16; arrays of
        # 8-byte words make that two C-speed extended-slice copies per block index
        words = array("Q", bytes(len(data)))
        per_sector = SECTOR // 8
        for j in range(SECTOR // 16):
            lane = array("Q", x.to_bytes(n * 16, "little"))
            words[2 * j::per_sector] = lane[0::2]
            words[2 * j + 1::per_sector] = lane[1::2]
            carry = x & top
            x = ((x ^ carry) << 1) ^ ((carry >> 127) * 0x87)
        stream = int.from_bytes(words.tobytes(), "little")
        size = len(data)
        masked = (int.from_bytes(data, "little") ^ stream).to_bytes(size, "little")
        ecb = Cipher(algorithms.AES(self.key[:half]), modes.ECB())
        op = ecb.encryptor() if encrypt else ecb.decryptor()
        done = op.update(masked) + op.finalize()
        return (int.from_bytes(done, "little") ^ stream).to_bytes(size, "little")

    def encrypt(self, sector: int, data: bytes) -> bytes:
        return self._run(sector, data, True)

    def decrypt(self, sector: int, data: bytes) -> bytes:
        return self._run(sector, data, False)


def _pbkdf2(hash_spec: str, password: bytes, salt: bytes, iterations: int, n: int) -> bytes:
    return PBKDF2HMAC(algorithm=_HASHES[hash_spec](), length=n, salt=salt,
                      iterations=iterations).derive(password)


def _diffuse(data: bytes, hash_spec: str) -> bytes:
    ds = hashlib.new(hash_spec).digest_size
    out = bytearray()
    for i in range(0, len(data), ds):
        chunk = data[i:i + ds]
        out += hashlib.new(hash_spec, struct.pack(">I", i // ds) + chunk).digest()[:len(chunk)]
    return bytes(out)


def _xor(a: bytes, b: bytes) -> bytes:
    return (int.from_bytes(a, "big") ^ int.from_bytes(b, "big")).to_bytes(len(a), "big")


def af_merge(material: bytes, key_bytes: int, stripes: int, hash_spec: str) -> bytes:
    d = bytes(key_bytes)
    for i in range(stripes - 1):
        d = _diffuse(_xor(d, material[i * key_bytes:(i + 1) * key_bytes]), hash_spec)
    return _xor(d, material[(stripes - 1) * key_bytes:stripes * key_bytes])


def af_split(key: bytes, stripes: int, hash_spec: str) -> bytes:
    kb = len(key)
    out = bytearray()
    d = bytes(kb)
    for _ in range(stripes - 1):
        r = os.urandom(kb)
        out += r
        d = _diffuse(_xor(d, r), hash_spec)
    return bytes(out + _xor(d, key))


def unlock(h: LuksHeader, read_area, password: bytes) -> bytes:
    """Try every active key slot; return the master key."""
    material_len = h.key_bytes * STRIPES
    padded = -(-material_len // SECTOR) * SECTOR
    for s in h.slots:
        if not s.active:
            continue
        slot_key = _pbkdf2(h.hash_spec, password, s.salt, s.iterations, h.key_bytes)
        enc = read_area(s.key_offset * SECTOR, padded)
        material = SectorCipher(h.cipher_name, h.cipher_mode, slot_key).decrypt(0, enc)
        mk = af_merge(material[:material_len], h.key_bytes, STRIPES, h.hash_spec)
        digest = _pbkdf2(h.hash_spec, mk, h.mk_salt, h.mk_iterations, 20)
        if hmac.compare_digest(digest, h.mk_digest):
            return mk
    raise BlockError("Invalid password, cannot unlock any keyslot")


def _iterations_for(hash_spec: str, iter_time_ms: int) -> int:
    """PBKDF2 iterations taking about ``iter_time_ms`` here (as QEMU benchmarks)."""
    probe = 10000
    t = time.perf_counter()
    _pbkdf2(hash_spec, b"benchmark", bytes(32), probe, 32)
    per_ms = probe / max((time.perf_counter() - t) * 1000, 1e-3)
    return max(1000, min(MAX_ITERATIONS, int(per_ms * iter_time_ms)))


def build_header(password: bytes, opts: dict[str, str]) -> tuple[LuksHeader, bytes, bytes]:
    """A new LUKS header with slot 0 set; returns (header, master key, key area bytes)."""
    alg = opts.get("cipher-alg", "aes-256")
    sizes = {"aes-128": 16, "aes-192": 24, "aes-256": 32}
    if alg not in sizes:
        raise BlockError(f"LUKS: cipher algorithm '{alg}' is not supported")
    mode = opts.get("cipher-mode", "xts")
    ivgen = opts.get("ivgen-alg", "plain64")
    hash_spec = opts.get("hash-alg", "sha256")
    if hash_spec not in _HASHES:
        raise BlockError(f"LUKS: hash algorithm '{hash_spec}' is not supported")
    if ivgen == "essiv":
        ivgen = f"essiv:{opts.get('ivgen-hash-alg', 'sha256')}"
    key_bytes = sizes[alg] * (2 if mode == "xts" else 1)
    cipher_mode = f"{mode}-{ivgen}"
    _cipher_spec("aes", cipher_mode, key_bytes)
    iter_time = int(opts.get("iter-time", "2000"))
    mk = os.urandom(key_bytes)
    while mode == "xts" and mk[:key_bytes // 2] == mk[key_bytes // 2:]:
        mk = os.urandom(key_bytes)
    iters = _iterations_for(hash_spec, iter_time)
    mk_iters = max(1000, iters // 8)
    mk_salt = os.urandom(32)
    digest = _pbkdf2(hash_spec, mk, mk_salt, mk_iters, 20)
    material_sectors = -(-key_bytes * STRIPES // SECTOR)
    slot_span = -(-material_sectors // _ALIGN_SECTORS) * _ALIGN_SECTORS
    first = _KEY_SLOT_START // SECTOR
    slots = [KeySlot(False, 0, bytes(32), first + i * slot_span, STRIPES) for i in range(8)]
    payload = first + 8 * slot_span
    salt = os.urandom(32)
    slots[0] = KeySlot(True, iters, salt, first, STRIPES)
    h = LuksHeader("aes", cipher_mode, hash_spec, payload, key_bytes, digest, mk_salt, mk_iters,
                   str(uuidlib.uuid4()), slots)
    slot_key = _pbkdf2(hash_spec, password, salt, iters, key_bytes)
    split = af_split(mk, STRIPES, hash_spec)
    split += bytes(material_sectors * SECTOR - len(split))
    enc = SectorCipher("aes", cipher_mode, slot_key).encrypt(0, split)
    area = bytearray(payload * SECTOR)
    hdr = h.pack()
    area[:len(hdr)] = hdr
    area[first * SECTOR:first * SECTOR + len(enc)] = enc
    return h, mk, bytes(area)


def header_info(h: LuksHeader, with_format: bool) -> dict:
    chain, ivgen = _cipher_spec(h.cipher_name, h.cipher_mode, h.key_bytes)
    bits = h.key_bytes * 8 // (2 if chain == "xts" else 1)
    d: dict = {"ivgen-alg": ivgen.split(":")[0], "hash-alg": h.hash_spec,
               "cipher-alg": f"aes-{bits}", "uuid": h.uuid}
    if ivgen.startswith("essiv:"):
        d["ivgen-hash-alg"] = ivgen[6:]
    if with_format:
        d["format"] = "luks"
    d["cipher-mode"] = chain
    slots = []
    for s in h.slots:
        e: dict = {"active": s.active}
        if s.active:
            e["iters"] = s.iterations
        e["key-offset"] = s.key_offset * SECTOR
        if s.active:
            e["stripes"] = s.stripes
        slots.append(e)
    d["slots"] = slots
    d["payload-offset"] = h.payload_offset * SECTOR
    d["master-key-iters"] = h.mk_iterations
    return d


def _secret(secrets: dict[str, bytes], options: dict[str, str], keys: tuple[str, ...]) -> bytes:
    sid = next((options[k] for k in keys if k in options), None)
    if sid is None:
        raise BlockError("Parameter 'key-secret' is required for cipher")
    if sid not in secrets:
        raise BlockError(f"No secret with id '{sid}' found")
    return secrets[sid]


# -- the standalone luks format ----------------------------------------------------
class LuksNode(BlockNode):
    format_name = "luks"
    zero_init = False   # unwritten ciphertext decrypts to noise, not zeros

    def __init__(self, file: BlockNode, read_only: bool, secrets: dict[str, bytes],
                 options: dict[str, str]) -> None:
        self.file = file
        self.filename = file.filename
        self.read_only = read_only or file.read_only
        raw = file.read(0, HEADER_SIZE)
        self.h = parse_luks_header(raw, max(file.size, HEADER_SIZE))
        self.payload = self.h.payload_offset * SECTOR
        self.cipher: SectorCipher | None = None
        if options.get("no-io") == "on" and not any(k in options for k in ("key-secret",)):
            self.read_only = True
            return
        password = _secret(secrets, options, ("key-secret",))
        mk = unlock(self.h, file.read, password)
        self.cipher = SectorCipher(self.h.cipher_name, self.h.cipher_mode, mk)

    @property
    def size(self) -> int:  # type: ignore[override]
        return max(0, self.file.size - self.payload) // SECTOR * SECTOR

    def _need_key(self) -> SectorCipher:
        if self.cipher is None:
            raise BlockError("LUKS volume is not unlocked (no key-secret)")
        return self.cipher

    def read(self, offset: int, length: int) -> bytes:
        c = self._need_key()
        a = offset // SECTOR * SECTOR
        b = -(-(offset + length) // SECTOR) * SECTOR
        plain = c.decrypt(a // SECTOR, self.file.read(self.payload + a, b - a))
        return plain[offset - a:offset - a + length]

    def write(self, offset: int, data: bytes | memoryview) -> None:
        self.check_writable()
        c = self._need_key()
        data = bytes(data)
        a = offset // SECTOR * SECTOR
        b = -(-(offset + len(data)) // SECTOR) * SECTOR
        if a != offset or b != offset + len(data):
            buf = bytearray(self.read(a, b - a))
            buf[offset - a:offset - a + len(data)] = data
            data = bytes(buf)
        self.file.write(self.payload + a, c.encrypt(a // SECTOR, data))

    def block_status(self, offset: int, length: int) -> Extent:
        return Extent(length, allocated=True, zero=False, data=True,
                      offset=self.payload + offset)

    def resize(self, new_size: int, shrink: bool = False) -> None:
        if new_size < self.size and not shrink:
            raise BlockError("Use the --shrink option to perform a shrink operation.")
        self.file.resize(self.payload + new_size)

    def format_specific_info(self) -> dict:
        return {"type": "luks", "data": header_info(self.h, with_format=False)}


def open_luks(file: BlockNode, read_only: bool = False, secrets=None, options=None,
              **_ignored) -> LuksNode:
    return LuksNode(file, read_only, secrets or {}, options or {})


def create_luks(filename: str, size: int, opts: dict[str, str],
                secrets: dict[str, bytes]) -> None:
    password = _secret(secrets, opts, ("key-secret",))
    h, mk, area = build_header(password, opts)
    f = FileNode(filename, create=True)
    try:
        f.write(0, area)
        f.truncate(len(area) + size)
        prealloc = opts.get("preallocation", "off")
        if prealloc == "full":
            node = LuksNode(f, False, {"k": password}, {"key-secret": "k"})
            node.write_zeroes(0, size)
        elif prealloc == "falloc":
            os.posix_fallocate(f.fd, len(area), size)
    finally:
        f.close()


# -- LUKS inside qcow2 ---------------------------------------------------------------
class Qcow2Crypto:
    """qcow2 data clusters encrypted with the master key; the IV sector comes from the
    host offset (as QEMU does for LUKS in qcow2)."""

    def __init__(self, h: LuksHeader, cipher: SectorCipher | None) -> None:
        self.h = h
        self.cipher = cipher

    def _c(self) -> SectorCipher:
        if self.cipher is None:
            raise BlockError("encrypted qcow2 image is not unlocked (no encrypt.key-secret)")
        return self.cipher

    def decrypt(self, host: int, data: bytes) -> bytes:
        a = host // SECTOR * SECTOR
        pad = host - a
        tail = -(pad + len(data)) % SECTOR
        if pad or tail:
            raise BlockError("qcow2: unaligned encrypted read")
        return self._c().decrypt(host // SECTOR, data)

    def encrypt(self, host: int, data: bytes) -> bytes:
        if host % SECTOR or len(data) % SECTOR:
            raise BlockError("qcow2: unaligned encrypted write")
        return self._c().encrypt(host // SECTOR, data)

    def info(self) -> dict:
        return header_info(self.h, with_format=True)


def open_qcow2_crypto(node, secrets: dict[str, bytes], options: dict[str, str]) -> Qcow2Crypto:
    off, length = node.h.crypto_header
    if off + length > node.file.size:
        raise BlockError("qcow2: LUKS header is outside the image file")
    raw = node.file.read(off, min(length, HEADER_SIZE))
    h = parse_luks_header(raw + bytes(max(0, HEADER_SIZE - len(raw))), length)
    if options.get("no-io") == "on" and "encrypt.key-secret" not in options:
        return Qcow2Crypto(h, None)
    password = _secret(secrets, options, ("encrypt.key-secret", "key-secret"))

    def read_area(o: int, n: int) -> bytes:
        return node.file.read(off + o, n)
    mk = unlock(h, read_area, password)
    return Qcow2Crypto(h, SectorCipher(h.cipher_name, h.cipher_mode, mk))


def setup_qcow2_encryption(node, opts: dict[str, str], secrets: dict[str, bytes]) -> None:
    password = _secret(secrets, opts, ("key-secret",))
    h, mk, area = build_header(password, opts)
    cs = node.cluster_size
    n = -(-len(area) // cs)
    off = node.refcounts.alloc(n)
    node.file.write(off, area + bytes(n * cs - len(area)))
    node.h.crypt_method = 2
    node.h.crypto_header = (off, len(area))
    node.write_header()
    node.crypto = Qcow2Crypto(h, SectorCipher(h.cipher_name, h.cipher_mode, mk))


# The LUKS parameters, as luks's -o keys and (prefixed with "encrypt.") qcow2's.
ENCRYPTION_OPTIONS = (
    Property("key-secret", "str",
             description="ID of the secret that provides the keyslot passphrase"),
    Property("cipher-alg", "str", description="Name of encryption cipher algorithm"),
    Property("cipher-mode", "str", description="Name of encryption cipher mode"),
    Property("ivgen-alg", "str", description="Name of IV generator algorithm"),
    Property("ivgen-hash-alg", "str", description="Name of IV generator hash algorithm"),
    Property("hash-alg", "str", description="Name of encryption hash algorithm"),
    Property("iter-time", "num", description="Time to spend in PBKDF in milliseconds"),
)


def probe_luks(head: bytes, filename: str) -> int:
    return 100 if head.startswith(MAGIC) else 0


declare("luks", "LUKS1 encrypted image", probe=probe_luks, open=open_luks,
        create=create_luks,
        properties=(ENCRYPTION_OPTIONS[0],),
        create_options=(SIZE_OPTION, *ENCRYPTION_OPTIONS, PREALLOCATION_OPTION))
