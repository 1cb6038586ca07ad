"""QEMU's structured migration channels to pemu's URIs (channel.py).

QEMU 9.1+ names migration endpoints as ``MigrationChannel`` objects: the QMP
``migrate`` command's ``channels`` list and ``-incoming '{"channel-type": ...}'``.

  {"channel-type": "main" | "cpr",
   "addr": {"transport": "socket", "type": "unix", "path": P}        -> unix:P
           {"transport": "socket", "type": "inet", "host": H, "port": N} -> tcp:H:N
           {"transport": "socket", "type": "fd", "str": N}            -> fd:N
           {"transport": "exec", "args": [ARGV...]}                   -> exec:ARGV
           {"transport": "file", "filename": P}                       -> file:P}

The ``cpr`` channel (cpr-transfer) carries descriptors, so it must be a UNIX socket.
"""

from __future__ import annotations

import json
import shlex

MAIN, CPR = "main", "cpr"


class ChannelSpecError(Exception):
    """A channel description pemu cannot use; the message is for the user."""


def address_uri(addr: object) -> str:
    if not isinstance(addr, dict):
        raise ChannelSpecError("a channel's 'addr' must be an object")
    transport = addr.get("transport")
    if transport == "socket":
        kind = addr.get("type")
        if kind == "unix" and isinstance(addr.get("path"), str):
            return f"unix:{addr['path']}"
        if kind == "inet" and "host" in addr and "port" in addr:
            return f"tcp:{addr['host']}:{addr['port']}"
        if kind == "fd" and "str" in addr:
            return f"fd:{addr['str']}"
        raise ChannelSpecError(f"socket address type {kind!r}: pemu takes unix (path), "
                               "inet (host, port) or fd (str)")
    if transport == "exec" and isinstance(addr.get("args"), list):
        return "exec:" + shlex.join(str(a) for a in addr["args"])
    if transport == "file" and isinstance(addr.get("filename"), str):
        if addr.get("offset", 0):
            raise ChannelSpecError("file transport: an offset is not supported")
        return f"file:{addr['filename']}"
    raise ChannelSpecError(f"migration transport {transport!r} is not supported "
                           "(socket, exec, file)")


def channels_uris(channels: object) -> dict[str, str]:
    """A ``channels`` list: its URIs by channel type (each type at most once)."""
    if not isinstance(channels, list) or not channels:
        raise ChannelSpecError("'channels' must be a non-empty list")
    out: dict[str, str] = {}
    for ch in channels:
        kind = ch.get("channel-type") if isinstance(ch, dict) else None
        if kind not in (MAIN, CPR):
            raise ChannelSpecError(f"channel-type {kind!r}: expected 'main' or 'cpr'")
        if kind in out:
            raise ChannelSpecError(f"two '{kind}' channels")
        out[kind] = address_uri(ch.get("addr"))
    if CPR in out and not out[CPR].startswith("unix:"):
        raise ChannelSpecError("the cpr channel must be a UNIX socket (it carries file "
                               "descriptors)")
    return out


def incoming_option(text: str) -> tuple[str, str]:
    """One ``-incoming`` value: (channel type, URI).  A URI or ``defer`` is the main
    channel; a JSON object is a MigrationChannel."""
    if not text.lstrip().startswith("{"):
        return MAIN, text
    try:
        channel = json.loads(text)
    except json.JSONDecodeError as e:
        raise ChannelSpecError(f"JSON parse error: {e.msg}") from None
    kind, uri = next(iter(channels_uris([channel]).items()))
    return kind, uri


__all__ = ["CPR", "MAIN", "ChannelSpecError", "address_uri", "channels_uris",
           "incoming_option"]
