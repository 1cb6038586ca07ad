"""TLS-PSK for Python's ssl module (which has no PSK interface before Python 3.13).

OpenSSL's PSK callbacks are installed on the SSL_CTX behind an ``ssl.SSLContext``
through ctypes.  The SSL_CTX pointer is the first field after the object header of
CPython's context object (``PySSLContext``); the functions are taken from the libssl
that ``_ssl`` itself is linked against, so both sides agree on the library.  OpenSSL
runs the callback inside the handshake, in the thread that called it, which is how a
server learns the client's identity (``handshake_identity``).
"""

from __future__ import annotations

import ctypes
import ssl
import sys
import threading

from pemu.crypto.secret import SecretError

_PSK_MAX = 256
_local = threading.local()

_SERVER_CB = ctypes.CFUNCTYPE(ctypes.c_uint, ctypes.c_void_p, ctypes.c_char_p,
                              ctypes.POINTER(ctypes.c_ubyte), ctypes.c_uint)
_CLIENT_CB = ctypes.CFUNCTYPE(ctypes.c_uint, ctypes.c_void_p, ctypes.c_char_p,
                              ctypes.POINTER(ctypes.c_char), ctypes.c_uint,
                              ctypes.POINTER(ctypes.c_ubyte), ctypes.c_uint)


def read_keys_file(path: str, kind: str, oid: str) -> dict[str, bytes]:
    """``keys.psk``: one ``username:hexkey`` per line."""
    keys: dict[str, bytes] = {}
    with open(path, encoding="utf-8", errors="replace") as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            user, sep, hexkey = line.partition(":")
            try:
                key = bytes.fromhex(hexkey)
            except ValueError:
                key = b""
            if not sep or not user or not key or len(key) > _PSK_MAX:
                raise SecretError(f"{kind} '{oid}': {path}:{n}: expected username:hexkey")
            keys[user] = key
    return keys


def _libssl() -> ctypes.CDLL:
    lib = ctypes.CDLL(ssl._ssl.__file__)  # dlsym searches _ssl's libssl too
    lib.SSL_CTX_set_psk_server_callback.argtypes = [ctypes.c_void_p, _SERVER_CB]
    lib.SSL_CTX_set_psk_server_callback.restype = None
    lib.SSL_CTX_set_psk_client_callback.argtypes = [ctypes.c_void_p, _CLIENT_CB]
    lib.SSL_CTX_set_psk_client_callback.restype = None
    return lib


def _ssl_ctx_pointer(ctx: ssl.SSLContext) -> int:
    header = sys.getsizeof(object())  # PyObject_HEAD: refcount and type
    return ctypes.c_void_p.from_address(id(ctx) + header).value


def _copy(dest, key: bytes, room: int) -> int:
    if len(key) > room:
        return 0
    for i, b in enumerate(key):
        dest[i] = b
    return len(key)


def install(ctx: ssl.SSLContext, creds) -> None:
    """Make ``ctx`` authenticate with ``creds.keys`` (server) / ``creds.username``."""
    lib = _libssl()
    # PSK cipher suites for TLS 1.2; TLS 1.3 uses the same callbacks with its own suites
    ctx.set_ciphers("PSK:ECDHE-PSK:DHE-PSK")
    pointer = _ssl_ctx_pointer(ctx)
    if creds.server:
        def server_cb(_ssl, identity, psk, room):
            user = (identity or b"").decode(errors="replace")
            key = creds.keys.get(user)
            _local.identity = user if key is not None else None
            return _copy(psk, key, room) if key is not None else 0
        callback = _SERVER_CB(server_cb)
        lib.SSL_CTX_set_psk_server_callback(pointer, callback)
    else:
        def client_cb(_ssl, _hint, identity, id_room, psk, room):
            user = creds.username.encode()
            if len(user) + 1 > id_room:
                return 0
            ctypes.memmove(identity, user + b"\0", len(user) + 1)
            return _copy(psk, creds.keys[creds.username], room)
        callback = _CLIENT_CB(client_cb)
        lib.SSL_CTX_set_psk_client_callback(pointer, callback)
    creds._psk_callback = callback  # OpenSSL keeps a raw pointer: keep the thunk alive


def start_handshake() -> None:
    _local.identity = None


def handshake_identity() -> str | None:
    """The PSK username the last handshake in this thread accepted."""
    return getattr(_local, "identity", None)
