"""Import every netdev backend so that each declares itself in the type registry."""

from pemu.net import user  # noqa: F401
