"""Turning a connected socket into an authenticated TLS session, by object id.

This is the one entry point for every TLS user (monitors, chardev sockets, migration):

  wrap_server(sock, "tls0", authz_id="auth0")   -> ssl.SSLSocket, or TLSRefused
  wrap_client(sock, "tls0", hostname="dst")     -> ssl.SSLSocket, or TLSRefused

The handshake is blocking with a timeout, so call it from the connection's own thread
(or before the socket joins an event loop).  The returned socket is blocking.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading

from pemu.crypto import psk
from pemu.crypto.objects import ObjectStore, user_objects
from pemu.crypto.tls_creds import X509Creds
from pemu.qemuopts.keyval import OptionError

HANDSHAKE_TIMEOUT_S = 30.0
_client_lock = threading.Lock()


class TLSRefused(Exception):
    """The handshake failed or the peer is not authorized (the socket is closed)."""


def x509_identity(sock: ssl.SSLSocket) -> str | None:
    """The peer certificate's distinguished name, RFC 4514 (QEMU's/GnuTLS's form)."""
    der = sock.getpeercert(binary_form=True)
    if not der:
        return None
    from cryptography import x509
    return x509.load_der_x509_certificate(der).subject.rfc4514_string()


def _creds(creds_id: str, server: bool, store: ObjectStore | None):
    try:
        creds = (store or user_objects()).tls_creds(creds_id)
    except OptionError as e:  # removed since the service started: refuse, do not crash
        raise TLSRefused(str(e)) from None
    want = "server" if server else "client"
    if creds.endpoint != want:
        raise TLSRefused(f"TLS credentials '{creds_id}' are for endpoint={creds.endpoint}, "
                         f"this end is a {want}")
    return creds


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.close()


def wrap_server(sock: socket.socket, creds_id: str, authz_id: str | None = None,
                store: ObjectStore | None = None,
                timeout: float = HANDSHAKE_TIMEOUT_S) -> ssl.SSLSocket:
    try:
        creds = _creds(creds_id, True, store)
        authz = (store or user_objects()).authz(authz_id) if authz_id else None
    except (TLSRefused, OptionError) as e:
        _close(sock)
        raise TLSRefused(str(e)) from None
    psk.start_handshake()
    try:
        sock.settimeout(timeout)
        tls = creds.context.wrap_socket(sock, server_side=True)
        tls.settimeout(None)
    except (ssl.SSLError, OSError) as e:
        _close(sock)
        raise TLSRefused(f"TLS handshake failed: {e}") from None
    if authz is not None:
        identity = x509_identity(tls) if isinstance(creds, X509Creds) \
            else psk.handshake_identity()
        if not authz.is_allowed(identity):
            _close(tls)
            raise TLSRefused(f"TLS client '{identity}' is not authorized by '{authz_id}'")
    return tls


def wrap_client(sock: socket.socket, creds_id: str, hostname: str | None = None,
                store: ObjectStore | None = None,
                timeout: float = HANDSHAKE_TIMEOUT_S) -> ssl.SSLSocket:
    """``hostname`` is checked against the server certificate (x509, verify-peer=on)."""
    try:
        creds = _creds(creds_id, False, store)
    except TLSRefused:
        _close(sock)
        raise
    ctx = creds.context
    try:
        sock.settimeout(timeout)
        with _client_lock:  # check_hostname is per context, the decision per call
            if isinstance(creds, X509Creds) and creds.verify_peer:
                ctx.check_hostname = hostname is not None
            tls = ctx.wrap_socket(sock, server_side=False, server_hostname=hostname,
                                  do_handshake_on_connect=False)
        tls.do_handshake()
        tls.settimeout(None)
    except (ssl.SSLError, OSError) as e:
        _close(sock)
        raise TLSRefused(f"TLS handshake failed: {e}") from None
    return tls
