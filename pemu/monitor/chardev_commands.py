"""query-chardev, chardev-add, chardev-remove and ringbuf-read/-write on the machine's
ChardevRegistry."""

from __future__ import annotations

import base64
import binascii

from pemu.chardev.backend import backend_names, factory_of
from pemu.chardev.ringbuf import RingbufChardev
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
    return [{"label": cid, "filename": _describe(dev), "frontend-open": _frontend_open(
                 chardevs, cid, dev)} for cid, dev in chardevs.chardevs.items()]


def _frontend_open(chardevs, cid: str, dev) -> bool:
    """A frontend that says whether its guest has the line open (a virtio-serial port)
    is believed; otherwise any frontend attached counts as open."""
    fe_open = getattr(dev, "fe_open", None)
    if fe_open is not None:
        return fe_open
    return cid in chardevs.in_use or hasattr(dev, "frontends")


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


def _ringbuf(chardevs, device: str) -> RingbufChardev:
    chardev = chardevs.chardevs.get(device) if chardevs is not None else None
    if chardev is None:
        raise QMPError(f"Device '{device}' not found", DEVICE_NOT_FOUND)
    backend = getattr(chardev, "backend", chardev)  # behind a mux
    if not isinstance(backend, RingbufChardev):
        raise QMPError(f"{device} is not a ringbuf device")
    return backend


def ringbuf_write(chardevs, device: str, data: str, format: str = "utf8") -> None:
    """``data`` to the guest, as typed on the line (base64-decoded first if asked)."""
    ring = _ringbuf(chardevs, device)
    if format == "base64":
        try:
            raw = base64.b64decode(data, validate=True)
        except binascii.Error:
            raise QMPError("base64 data is invalid") from None
    else:
        raw = data.encode()
    ring.inject(raw)


def ringbuf_read(chardevs, device: str, size: int, format: str = "utf8") -> str:
    """Up to ``size`` bytes of guest output, oldest first, taken out of the ring."""
    if size <= 0:
        raise QMPError("size must be greater than zero")
    raw = _ringbuf(chardevs, device).read(size)
    if format == "base64":
        return base64.b64encode(raw).decode()
    # QEMU hands the bytes over as they are; JSON needs text, so what is not UTF-8
    # becomes U+FFFD (use format=base64 for binary output)
    return raw.decode("utf-8", errors="replace")
