"""How a chardev backend declares itself: its name, its options, how it opens.

Each backend module ends with one ``declare_backend(...)`` call, which registers a
``CHARDEV`` type in the type registry (pemu/qom/registry.py).  Everything that names
backends reads that table: ``-chardev help``, ``-chardev NAME,help``, the check of
``-chardev`` options (an unknown backend or option is refused with a one-line error
naming it), and QMP ``chardev-add``.

A backend's ``open`` receives a ``BackendOptions``: the ``-chardev`` options, checked
against the declared properties, read typed, with the declared defaults.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from pemu.chardev.base import Chardev
from pemu.qemuopts.keyval import OptionError, parse_bool
from pemu.qom.registry import CHARDEV, Property, RegistryError, TypeInfo, lookup, register, types

# Options every backend takes; "backend" is the implied first word (the type name).
COMMON_PROPERTIES = (
    Property("id", "str", description="the chardev's name (-serial chardev:ID, -mon, "
             "-device ...,chardev=ID)"),
    Property("mux", "bool", "off", "share the backend between frontends (Ctrl-A c "
             "switches)"),
)
IMPLIED_KEY = "backend"


class BackendOptions:
    """The options of one ``-chardev``, typed by its backend's declared properties."""

    def __init__(self, info: TypeInfo, opts: Mapping[str, str], what: str,
                 claim: Callable[[str, str], None]) -> None:
        self.info = info
        self.opts = opts
        self.what = what  # "-chardev NAME", the prefix of every error
        self.id = opts["id"]
        self._claim = claim

    def _default(self, key: str) -> str | None:
        prop = self.info.find_property(key)
        if prop is None:  # a backend reading an option it did not declare
            raise KeyError(f"chardev backend {self.info.name} declares no option {key}")
        return prop.default

    def has(self, key: str) -> bool:
        return key in self.opts

    def text(self, key: str) -> str | None:
        return self.opts.get(key, self._default(key))

    def required(self, key: str) -> str:
        value = self.text(key)
        if value is None:
            raise OptionError(f"{self.what}: parameter '{key}' is missing")
        return value

    def flag(self, key: str) -> bool:
        return parse_bool(self.text(key) or "off", f"{self.what}: {key}")

    def number(self, key: str, low: int, high: int) -> int:
        text = self.required(key)
        try:
            value = int(text)
        except ValueError:
            raise OptionError(f"{self.what}: {key} '{text}' is not a number") from None
        if not low <= value <= high:
            raise OptionError(f"{self.what}: {key} {value} out of range")
        return value

    def claim(self, resource: str, message: str) -> None:
        """Take a host resource only one chardev of the machine may use (stdio)."""
        self._claim(resource, f"{self.what}: {message}")


QMPData = Mapping[str, object]


def same_names(info: TypeInfo, data: QMPData) -> dict[str, str]:
    """QMP ``chardev-add`` data whose members are the backend's option names (stdio,
    pty, null): booleans become on/off, anything undeclared is refused."""
    out = {}
    for key, value in data.items():
        if info.find_property(key) is None or key in ("id", "mux"):
            raise OptionError(f"chardev backend '{info.name}' has no parameter '{key}'")
        out[key] = ("on" if value else "off") if isinstance(value, bool) else str(value)
    return out


@dataclass(frozen=True)
class BackendFactory:
    """What a CHARDEV type's ``factory`` is: ``open`` makes the chardev, ``from_qmp``
    turns QMP's ``ChardevBackend`` data (the members QEMU's schema gives that backend)
    into ``-chardev`` options."""

    open: Callable[[BackendOptions], Chardev]
    from_qmp: Callable[[TypeInfo, QMPData], dict[str, str]] = same_names

    def __call__(self, options: BackendOptions) -> Chardev:
        return self.open(options)


def declare_backend(name: str, description: str, open: Callable[[BackendOptions], Chardev],
                    *properties: Property,
                    from_qmp: Callable[[TypeInfo, QMPData], dict[str, str]] = same_names,
                    ) -> TypeInfo:
    """Register a ``-chardev NAME`` backend with its own options (the common ones,
    ``id`` and ``mux``, are added)."""
    return register(TypeInfo(name, CHARDEV, description,
                             properties=COMMON_PROPERTIES + properties,
                             factory=BackendFactory(open, from_qmp)))


def backend_names() -> list[str]:
    return [t.name for t in types(CHARDEV)]


def backend_type(name: str, what: str) -> TypeInfo:
    """The declared backend ``name``; an OptionError naming it (and the known ones)
    otherwise, as QEMU's "'X' is not a valid char driver name"."""
    try:
        return lookup(CHARDEV, name)
    except RegistryError:
        raise OptionError(f"{what}: '{name}' is not a valid char driver name "
                          f"(supported: {', '.join(backend_names())})") from None


def check_backend_options(info: TypeInfo, opts: Mapping[str, str], what: str) -> None:
    """Every key a property the backend declares (QEMU: "Invalid parameter 'X'"), every
    bool property on/off."""
    for key, value in opts.items():
        if key == IMPLIED_KEY:
            continue
        prop = info.find_property(key)
        if prop is None:
            raise OptionError(f"{what}: Invalid parameter '{key}'")
        if prop.type == "bool":
            parse_bool(value, f"{what}: {key}")


def factory_of(info: TypeInfo) -> BackendFactory:
    factory = info.factory
    assert isinstance(factory, BackendFactory), f"{info.name} is not a chardev backend"
    return factory
