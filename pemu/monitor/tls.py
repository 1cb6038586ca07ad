"""TLS for monitor sockets: ``tls-creds=ID[,tls-authz=ID]`` on ``-qmp``/``-monitor``.

The credentials and authorization objects live in the one store of security objects
(``pemu.crypto``); this module only checks that a monitor's options name usable ones
and gives the Listener the function that turns an accepted client into a TLS session.
"""

from __future__ import annotations

from collections.abc import Callable
from socket import socket

from pemu.crypto.objects import user_objects
from pemu.crypto.tls_session import wrap_server
from pemu.qemuopts.keyval import OptionError

ServerWrap = Callable[[socket], socket]


def server_wrapper(what: str, creds_id: str, authz_id: str | None = None) -> ServerWrap:
    """``wrap(sock) -> ssl socket`` for a listening monitor (raises TLSRefused)."""
    store = user_objects()
    try:
        creds = store.tls_creds(creds_id)
        if authz_id:
            store.authz(authz_id)
    except OptionError as e:
        raise OptionError(f"{what}: {e} (add -object tls-creds-x509,...)") from None
    if not creds.server:
        raise OptionError(f"{what}: a monitor needs endpoint=server credentials "
                          f"('{creds_id}' has endpoint={creds.endpoint})")
    return lambda sock: wrap_server(sock, creds_id, authz_id)


def load_tls_objects(objects: list[dict[str, str]]) -> None:
    """Put the command line's -object security objects into the store."""
    user_objects().sync(objects)
