"""query-chardev, chardev-add and chardev-remove on the machine's ChardevRegistry."""

from __future__ import annotations

from pemu.monitor.errors import DEVICE_NOT_FOUND, QMPError
from pemu.qemuopts.keyval import OptionError


def _describe(chardev) -> str:
    backend = getattr(chardev, "backend", chardev)  # a mux shows its backend
    describe = getattr(backend, "describe", None)
    if describe is not None:
        return describe()
    path = getattr(backend, "path", None)
    kind = type(backend).__name__.removesuffix("Chardev").lower()
    return f"{kind}:{path}" if path else kind


def query_chardev(registry) -> list[dict[str, object]]:
    if registry is None:
        return []
    return [{"label": cid, "filename": _describe(dev),
             "frontend-open": cid in registry.in_use or hasattr(dev, "frontends")}
            for cid, dev in registry.chardevs.items()]


def _options(cid: str, backend: object) -> dict[str, str]:
    """QMP's ChardevBackend union -> the -chardev option dict the registry takes."""
    if not isinstance(backend, dict) or not isinstance(backend.get("type"), str):
        raise QMPError("Parameter 'backend' must be an object with a 'type' member")
    kind = backend["type"]
    data = backend.get("data", {})
    if not isinstance(data, dict):
        raise QMPError("Parameter 'backend.data' must be an object")
    if kind == "null":
        return {"backend": "null", "id": cid}
    if kind == "file":
        out = data.get("out")
        if not isinstance(out, str):
            raise QMPError("Parameter 'backend.data.out' is missing")
        return {"backend": "file", "id": cid, "path": out,
                "append": "on" if data.get("append") else "off"}
    if kind == "socket":
        addr = data.get("addr")
        if not isinstance(addr, dict):
            raise QMPError("Parameter 'backend.data.addr' is missing")
        inner = addr.get("data", {})
        opts = {"backend": "socket", "id": cid,
                "server": "on" if data.get("server", True) else "off",
                "wait": "on" if data.get("wait", False) else "off"}
        if addr.get("type") == "unix" and isinstance(inner.get("path"), str):
            opts["path"] = inner["path"]
        elif addr.get("type") == "inet" and isinstance(inner.get("port"), str | int):
            opts["host"] = str(inner.get("host", "127.0.0.1"))
            opts["port"] = str(inner["port"])
        else:
            raise QMPError("backend.data.addr must be unix (path) or inet (host, port)")
        return opts
    raise QMPError(f"chardev backend type '{kind}' is not supported (null, file, socket)")


def chardev_add(registry, cid: str, backend: object) -> dict[str, object]:
    if registry is None:
        raise QMPError("this machine has no character devices")
    opts = _options(cid, backend)
    try:
        registry.add(opts)
    except OptionError as e:
        raise QMPError(str(e)) from None
    return {}


def chardev_remove(registry, cid: str) -> None:
    if registry is None or cid not in registry.chardevs:
        raise QMPError(f"Chardev '{cid}' not found", DEVICE_NOT_FOUND)
    if cid in registry.in_use:
        raise QMPError(f"Chardev '{cid}' is busy")
    registry.chardevs.pop(cid).close()
