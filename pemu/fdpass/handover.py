"""The host descriptors besides RAM that a cpr-transfer hands to the new pemu.

A live update must not reopen what the guest's devices use: a disk image may have
been renamed or unlinked since pemu started, a TAP interface that is not multi-queue
cannot be attached twice, and a reopened one would drop the link.  The old pemu sends
the open descriptors over the cpr channel (pemu/migration/cpr.py) and the new one
takes them where it would otherwise open by name (QEMU's cpr_find_fd):

  ``file``  disk images (block ``file`` nodes) by the file name they were opened with
            and their access mode: ``pemu.fdpass.open_path`` asks ``take_file``;
  ``tap``   TAP queues by netdev id: ``-netdev tap`` asks ``take("tap", id)``;
  ``chardev`` a socket chardev's listening socket and connected peer by chardev id
            (pemu/chardev/socket.py): a client stays connected across the update.

The new pemu reads the cpr channel (pemu/migration/cpr.py) before it builds its
machine (the CLIs call ``CprListener.accept_early``), so every backend finds its
descriptor.  What no backend took is closed once the machine is built
(``close_untaken``).
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass

FILE, TAP, CHARDEV = "file", "tap", "chardev"
KINDS = (FILE, TAP, CHARDEV)


@dataclass
class Handover:
    """One backend's descriptors: ``kind``, ``key`` (file name + access mode, netdev
    id) and the fds, in the backend's order (a multi-queue TAP has several)."""

    kind: str
    key: str
    fds: list[int]

    def describe(self) -> dict[str, object]:
        return {"kind": self.kind, "key": self.key, "count": len(self.fds)}


# -- the source: what the machine has open ---------------------------------------------
def file_key(filename: str, access: int) -> str:
    return f"{access & os.O_ACCMODE}:{filename}"


def collect(machine: object) -> list[Handover]:
    """The disk images and TAP queues of a machine (a MonitoredMachine)."""
    out: list[Handover] = []
    block_layer = getattr(machine, "block", None)
    drives = block_layer.drives.values() if block_layer is not None else ()
    seen: set[int] = set()
    for node in _nodes([d.backend.node for d in drives]):
        fd = getattr(node, "fd", -1)
        if getattr(node, "format_name", "") == "file" and fd >= 0 and fd not in seen:
            seen.add(fd)
            access = os.O_RDONLY if node.read_only else os.O_RDWR
            out.append(Handover(FILE, file_key(node.filename, access), [fd]))
    network = getattr(machine, "network", None)
    for netdev_id, client in (network.netdevs.items() if network is not None else ()):
        if getattr(client, "kind", "") == TAP and client.fds:
            out.append(Handover(TAP, netdev_id, list(client.fds)))
    for chardev_id, chardev in _chardevs(machine).items():
        fds = chardev.handover_fds() if hasattr(chardev, "handover_fds") else None
        if fds:
            out.append(Handover(CHARDEV, chardev_id, fds))
    return out


def _chardevs(machine: object) -> dict:
    """The chardevs that may move: not a monitor's (the update may be driven through
    it, and its session belongs to this process)."""
    registry = getattr(machine, "chardevs", None)
    if registry is None:
        return {}
    frontends = getattr(registry, "frontend_of", {})
    return {cid: dev for cid, dev in registry.chardevs.items()
            if frontends.get(cid) != "monitor"}


def _nodes(roots: list) -> list:
    """Every node under the drives: filters hold ``child``, formats ``file`` and
    ``backing``."""
    out, pending, seen = [], list(roots), set()
    while pending:
        node = pending.pop()
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        out.append(node)
        pending += [getattr(node, n, None) for n in ("child", "file", "backing")]
    return out


def release(machine: object, handed: list[Handover]) -> None:
    """The old pemu after the switch-over: stop reading the TAP queues and sockets it
    handed over (it would take the new process's frames and bytes) and close its
    copies."""
    network = getattr(machine, "network", None)
    chardevs = _chardevs(machine)
    for item in handed:
        if item.kind == TAP and network is not None and item.key in network.netdevs:
            network.netdevs[item.key].close()
        elif item.kind == CHARDEV and item.key in chardevs:
            chardevs[item.key].handed_over()


# -- the destination: what the old pemu handed over ----------------------------------
_lock = threading.Lock()
_received: dict[tuple[str, str], list[list[int]]] = {}


def adopt(items: list[Handover]) -> None:
    """Keep the received descriptors until a backend takes them."""
    with _lock:
        for item in items:
            for fd in item.fds:
                os.set_inheritable(fd, False)  # as pemu's own opens (O_CLOEXEC)
            _received.setdefault((item.kind, item.key), []).append(item.fds)


def take(kind: str, key: str) -> list[int] | None:
    """A handed-over backend's descriptors (now the caller's to close), or None."""
    with _lock:
        waiting = _received.get((kind, key))
        if not waiting:
            return None
        fds = waiting.pop(0)
        if not waiting:
            del _received[(kind, key)]
        return fds


def take_file(filename: str, flags: int) -> int | None:
    """A disk image handed over under ``filename`` with the access mode of ``flags``;
    None when there is none (or the open creates the file: that must be a new one)."""
    if flags & os.O_CREAT:
        return None
    fds = take(FILE, file_key(filename, flags))
    return fds[0] if fds else None


def close_untaken() -> list[str]:
    """Close what no backend took (a backend the new command line lacks); returns
    their names, for a warning."""
    with _lock:
        names = [f"{kind} {key}" for (kind, key) in _received]
        for lists in _received.values():
            for fds in lists:
                for fd in fds:
                    os.close(fd)
        _received.clear()
    return names


__all__ = ["CHARDEV", "FILE", "KINDS", "TAP", "Handover", "adopt", "close_untaken",
           "collect", "file_key", "release", "take", "take_file"]
