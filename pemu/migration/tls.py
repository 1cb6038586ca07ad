"""TLS on a migration channel: QEMU's ``tls-creds``/``tls-authz``/``tls-hostname``.

The source calls ``secure_outgoing`` right after connecting, the destination
``secure_incoming`` right after accepting; both read the migration parameters at that
moment (as QEMU does, so ``migrate-set-parameters`` may come after ``-incoming tcp:``
as long as it comes before the source connects).  An empty ``tls-creds`` means plain
TCP.  A refused handshake raises ``ChannelError``: the source's migration fails and
the guest runs on; the destination reports the error (pemu/monitor/migrate.py).
"""

from __future__ import annotations

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


__all__ = ["TLS_PARAMETERS", "default_tls_parameters", "secure_incoming",
           "secure_outgoing"]
