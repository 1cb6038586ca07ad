"""query-chardev, chardev-add and chardev-remove on the machine's ChardevRegistry."""

from __future__ import annotations

from pemu.chardev.backend import backend_names, factory_of
from pemu.monitor.errors import DEVICE_NOT_FOUND, QMPError
from pemu.qemuopts.keyval import OptionError
from pemu.qom import registry


def _describe(chardev) -> str:
    backend = getattr(chardev, "backend", chardev)  # a mux shows its backend
    describe = getattr(backend, "describe", None)
    if describe is not None:
        return describe()
    path = getattr(backend, "path", None)
    kind = type(backend).__name__.removesuffix("Chardev").lower()
    return f"{kind}:{path}" if path else kind


def query_chardev(chardevs) -> list[dict[str, object]]:
    if chardevs is None:
        return []
    return [{"label": cid, "filename": _describe(dev),
             "frontend-open": cid in chardevs.in_use or hasattr(dev, "frontends")}
            for cid, dev in chardevs.chardevs.items()]


def _options(cid: str, backend: object) -> dict[str, str]:
    """QMP's ChardevBackend union -> the -chardev option dict the registry takes; the
    backend type and its data's members come from the backend's declaration."""
    if not isinstance(backend, dict) or not isinstance(backend.get("type"), str):
        raise QMPError("Parameter 'backend' must be an object with a 'type' member")
    kind = backend["type"]
    data = backend.get("data", {})
    if not isinstance(data, dict):
        raise QMPError("Parameter 'backend.data' must be an object")
    try:
        info = registry.lookup(registry.CHARDEV, kind)
    except registry.RegistryError:
        raise QMPError(f"chardev backend type '{kind}' is not supported "
                       f"({', '.join(backend_names())})") from None
    try:
        opts = factory_of(info).from_qmp(info, data)
    except OptionError as e:
        raise QMPError(str(e)) from None
    return {"backend": kind, "id": cid} | opts


def chardev_add(chardevs, cid: str, backend: object) -> dict[str, object]:
    if chardevs is None:
        raise QMPError("this machine has no character devices")
    opts = _options(cid, backend)
    try:
        chardev = chardevs.add(opts)
    except OptionError as e:
        raise QMPError(str(e)) from None
    if opts["backend"] == "pty":
        return {"pty": getattr(chardev, "path", "")}  # ChardevReturn names the pty
    return {}


def chardev_remove(chardevs, cid: str) -> None:
    if chardevs is None or cid not in chardevs.chardevs:
        raise QMPError(f"Chardev '{cid}' not found", DEVICE_NOT_FOUND)
    if cid in chardevs.in_use:
        raise QMPError(f"Chardev '{cid}' is busy")
    chardevs.chardevs.pop(cid).close()
