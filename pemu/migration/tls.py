"""TLS on a migration channel: QEMU's ``tls-creds``/``tls-authz``/``tls-hostname``.

The source calls ``secure_outgoing`` right after connecting, the destination
``secure_incoming`` right after accepting; both read the migration parameters at that
moment (as QEMU does, so ``migrate-set-parameters`` may come after ``-incoming tcp:``
as long as it comes before the source connects).  An empty ``tls-creds`` means plain
TCP.  A refused handshake raises ``ChannelError``: the source's migration fails and
the guest runs on; the destination reports the error (pemu/monitor/migrate.py).
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping

from pemu.crypto.tls_session import TLSRefused, wrap_client, wrap_server
from pemu.migration.channel import Channel, ChannelError, _host_port, _socket_channel

# migrate-set-parameters names; "" is off (QEMU's query shows the empty strings too)
TLS_PARAMETERS = ("tls-creds", "tls-authz", "tls-hostname")


def default_tls_parameters() -> dict[str, str]:
    return {name: "" for name in TLS_PARAMETERS}


def _socket_of(channel: Channel, uri: str):
    if channel.sock is None:
        channel.close()
        raise ChannelError(f"{uri}: TLS is only supported on tcp: and unix: "
                           "migration channels")
    return channel.sock


def _hostname(uri: str, params: Mapping[str, object]) -> str | None:
    """What the server certificate must name: tls-hostname, else the tcp: host."""
    if params.get("tls-hostname"):
        return str(params["tls-hostname"])
    if uri.startswith("tcp:"):
        return _host_port(uri[len("tcp:"):])[0]
    return None


def secure_outgoing(channel: Channel, uri: str, params: Mapping[str, object]) -> Channel:
    creds = params.get("tls-creds")
    if not creds:
        return channel
    sock = _socket_of(channel, uri)
    try:
        tls = wrap_client(sock, str(creds), hostname=_hostname(uri, params))
    except TLSRefused as e:
        raise ChannelError(f"{uri}: {e}") from None
    return _socket_channel(tls)


def secure_incoming(channel: Channel, uri: str, params: Mapping[str, object]) -> Channel:
    creds = params.get("tls-creds")
    if not creds:
        return channel
    sock = _socket_of(channel, uri)
    try:
        tls = wrap_server(sock, str(creds), str(params.get("tls-authz") or "") or None)
    except TLSRefused as e:
        raise ChannelError(f"{uri}: {e}") from None
    return _socket_channel(tls)


# After the end record, on a TLS channel, the destination says it loaded the state.
# An authz refusal comes after the handshake (which the source has passed by then), so
# a small guest's whole state may already sit in the socket buffers when the
# destination drops the connection: without this word the source would take the
# migration for done and stop its guest for good.  (pemu's stream is its own, so no
# QEMU peer is expected on either side.)
LOADED = b"\x06"
DELIVERY_TIMEOUT_S = 30.0


def _is_tls(channel: Channel) -> bool:
    return isinstance(channel.sock, ssl.SSLSocket)


def acknowledge(channel: Channel, return_path: bool = False) -> None:
    """Destination: the whole stream is loaded (said on TLS channels, and on a socket
    with the ``return-path`` capability, which libvirt turns on for every migration)."""
    if (_is_tls(channel) or (return_path and channel.sock is not None)) \
            and channel.write is not None:
        channel.write(LOADED)


def confirm_delivery(channel: Channel, return_path: bool = False,
                     timeout: float = DELIVERY_TIMEOUT_S) -> None:
    """Source: wait for the destination's LOADED; anything else (the connection reset
    or closed, a TLS alert, ``timeout`` seconds of silence) fails the migration, and
    the source's guest runs on.  A plain channel without ``return_path`` (or one that
    is no socket: fd:, exec:, file:) returns at once."""
    sock = channel.sock
    if sock is None or not (_is_tls(channel) or return_path):
        return
    sock.settimeout(timeout)
    try:
        got = sock.recv(len(LOADED))
    except TimeoutError:
        raise ChannelError(f"the destination did not confirm the load in {timeout:g} s") \
            from None
    except OSError as e:  # ConnectionResetError, a TLS alert...
        got = b""
        why = str(e)
    else:
        why = "connection closed"
    if got != LOADED:
        hint = "; is this client authorized?" if _is_tls(channel) else ""
        raise ChannelError(f"the destination did not load the migration stream "
                           f"({why}){hint}")


__all__ = ["LOADED", "TLS_PARAMETERS", "acknowledge", "confirm_delivery",
           "default_tls_parameters", "secure_incoming", "secure_outgoing"]
