"""From command-line options to chardev objects.

``-chardev BACKEND,id=ID,...`` arrives from ``pemu.cli.system_config`` as a dict
(``backend`` holds the first word); ``-serial``/``-monitor`` arrive as QEMU's legacy
strings (``stdio``, ``file:F``, ``tcp:HOST:PORT,server=on``, ``mon:stdio`` ...).  A
board owns one ``ChardevRegistry`` and asks it for a frontend per device.  Which
backends exist and what options each takes is declared by the backends themselves
(backend.py); this module only keeps a machine's chardevs by id.
"""

from __future__ import annotations

from pemu.chardev.backend import (
    BackendOptions,
    backend_type,
    check_backend_options,
    factory_of,
)
from pemu.chardev.base import Chardev, ChardevError
from pemu.chardev.mux import MuxChardev
from pemu.qemuopts.keyval import OptionError, parse_bool, parse_keyval


class ChardevRegistry:
    """All chardevs of one machine, by id.  The backends themselves are the CHARDEV
    types of the type registry (each declared in its module, see backend.py)."""

    def __init__(self) -> None:
        self.chardevs: dict[str, Chardev | MuxChardev] = {}
        self.in_use: set[str] = set()
        self.frontend_of: dict[str, str] = {}  # chardev id -> its frontend's label
        # Frontends made by ``mon:`` specs, waiting for the monitor to take them.
        self.monitor_frontends: list[Chardev] = []
        self.claimed: set[str] = set()  # host resources one chardev at most may use
        self._anon = 0

    # -- -chardev ------------------------------------------------------------------
    def add(self, opts: dict[str, str]) -> Chardev | MuxChardev:
        """Create a chardev from a ``-chardev`` dict; raises OptionError on bad input."""
        backend = opts.get("backend", "")
        cid = opts.get("id")
        what = f"-chardev {backend}"
        info = backend_type(backend, what)
        check_backend_options(info, opts, what)
        if not cid:
            raise OptionError(f"{what}: parameter 'id' is missing")
        if cid in self.chardevs:
            raise OptionError(f"{what}: attempt to add duplicate chardev id '{cid}'")
        mux = parse_bool(opts.get("mux", "off"), f"{what}: mux")
        chardev = self._create(backend, opts, cid, what)
        if mux:
            chardev = MuxChardev(chardev)
        self.chardevs[cid] = chardev
        return chardev

    def _create(self, backend: str, opts: dict[str, str], cid: str, what: str) -> Chardev:
        info = backend_type(backend, what)
        try:
            return factory_of(info)(BackendOptions(info, opts, what, self.claim))
        except ChardevError as e:
            raise OptionError(f"{what}: {e}") from None

    def claim(self, resource: str, message: str = "") -> None:
        """Take ``resource`` (``stdio``) for one chardev; OptionError(message) if taken."""
        if resource in self.claimed:
            raise OptionError(message or f"cannot use {resource} twice")
        self.claimed.add(resource)

    def get(self, cid: str) -> Chardev | MuxChardev:
        try:
            return self.chardevs[cid]
        except KeyError:
            raise OptionError(f"chardev '{cid}' not found") from None

    def attach(self, cid: str, label: str) -> Chardev:
        """A frontend's handle on chardev ``cid``: a new mux port or the chardev itself."""
        chardev = self.get(cid)
        if isinstance(chardev, MuxChardev):
            return chardev.add_frontend(label)
        if cid in self.in_use:
            raise OptionError(f"chardev '{cid}' is already in use (add mux=on to share it)")
        self.in_use.add(cid)
        self.frontend_of[cid] = label
        return chardev

    # -- -serial / -monitor legacy strings -------------------------------------------
    def from_legacy(self, spec: str, label: str) -> Chardev | None:
        """``-serial``-style spec -> frontend chardev; None for ``none``."""
        if spec == "none":
            return None
        if spec.startswith("chardev:"):
            return self.attach(spec[len("chardev:"):], label)
        if spec.startswith("mon:"):
            # The device and the monitor share one backend; Ctrl-C goes to the guest.
            opts = self._legacy_opts(spec[4:], label)
            if opts["backend"] == "stdio":
                opts["signal"] = "off"
            mux = self.add(opts | {"mux": "on"})
            assert isinstance(mux, MuxChardev)
            fe = mux.add_frontend(label)
            self.monitor_frontends.append(mux.add_frontend("monitor"))
            return fe
        opts = self._legacy_opts(spec, label)
        chardev = self.add(opts)
        self.in_use.add(opts["id"])
        if isinstance(chardev, MuxChardev):
            return chardev.add_frontend(label)
        if opts["backend"] == "stdio":
            # A lone stdio still answers Ctrl-A x / h, as in QEMU with -nographic.
            mux = MuxChardev(chardev)
            self.chardevs[opts["id"]] = mux
            return mux.add_frontend(label)
        return chardev

    def _legacy_opts(self, spec: str, label: str) -> dict[str, str]:
        cid = label
        while cid in self.chardevs:  # a second "-serial pty" with the same label
            self._anon += 1
            cid = f"{label}.{self._anon}"
        if spec in ("stdio", "null", "pty"):
            return {"backend": spec, "id": cid}
        if spec.startswith("file:"):
            return {"backend": "file", "id": cid, "path": spec[5:]}
        for prefix in ("tcp:", "unix:"):
            if spec.startswith(prefix):
                return self._legacy_socket(prefix[:-1], spec[len(prefix):], cid)
        raise OptionError(f"'{spec}' is not a valid char driver (use stdio, null, file:F, "
                          "pty, tcp:HOST:PORT, unix:PATH, chardev:ID, mon:...)")

    @staticmethod
    def _legacy_socket(kind: str, rest: str, cid: str) -> dict[str, str]:
        where, _, tail = rest.partition(",")
        raw = parse_keyval(tail) if tail else {}
        opts = {"backend": "socket", "id": cid}
        for key, value in raw.items():
            if key == "nowait":  # old spelling of wait=off
                opts["wait"] = "off"
            elif key in ("server", "wait", "nodelay"):
                opts[key] = value
            else:
                raise OptionError(f"{kind}:{rest}: invalid parameter '{key}'")
        if kind == "unix":
            opts["path"] = where
            return opts
        host, sep, port = where.rpartition(":")
        if not sep:
            raise OptionError(f"tcp:{rest}: expected tcp:HOST:PORT")
        opts["host"] = host.strip("[]")
        opts["port"] = port
        return opts

    def close_all(self) -> None:
        for chardev in self.chardevs.values():
            chardev.close()
        self.chardevs.clear()
