"""Import every netdev backend so that each declares itself in the type registry."""

from pemu.net import dgram, hub, legacy_socket, stream, tap, user  # noqa: F401
