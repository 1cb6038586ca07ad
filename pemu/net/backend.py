"""How a netdev backend declares itself: its name, its options, how it opens.

Each backend module ends with one ``declare_netdev(...)`` call, which registers a
``NETDEV`` type in the type registry (pemu/qom/registry.py).  ``-netdev help``,
``-netdev TYPE,help``, the check of ``-netdev``/``-nic`` options (an unknown type or
option is refused with QEMU's one-line error) and QMP ``netdev_add`` read that table.

A backend's ``open`` receives ``NetdevOptions``: the options as given (a property of
type ``[str]``, such as ``hostfwd``, may be given several times), read typed with the
declared defaults.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pemu.net.client import NetClient
from pemu.qemuopts.keyval import OptionError, parse_bool
from pemu.qom.registry import NETDEV, Property, RegistryError, TypeInfo, lookup, register, types

REPEATABLE = "[str]"  # the Property.type of an option that may be given several times
COMMON_PROPERTIES = (
    Property("id", "str", description="the netdev's name (-device ...,netdev=ID)"),
)

# Backends QEMU has that pemu does not build yet: named in the error, never ignored.
NOT_BUILT = {name: f"the {name} netdev backend is not implemented in pemu yet"
             for name in ("l2tpv3", "vde",
                          "bridge", "vhost-user", "vhost-vdpa")}


class NetdevOptions:
    """The options of one ``-netdev`` (or the netdev half of a ``-nic``), in order."""

    def __init__(self, info: TypeInfo, items: list[tuple[str, str]], what: str,
                 network: object = None) -> None:
        self.info = info
        self.network = network  # the machine's Network (hubport finds its hub there)
        self.items = items
        self.what = what  # "-netdev user,id=n0,...": the prefix of every error
        self.id = self.text("id") or ""

    def _prop(self, key: str) -> Property:
        prop = self.info.find_property(key)
        if prop is None:  # a backend reading an option it did not declare
            raise KeyError(f"netdev backend {self.info.name} declares no option {key}")
        return prop

    def texts(self, key: str) -> list[str]:
        self._prop(key)
        return [v for k, v in self.items if k == key]

    def text(self, key: str) -> str | None:
        given = self.texts(key)
        return given[-1] if given else self._prop(key).default

    def flag(self, key: str) -> bool:
        value = self.text(key)
        if value is None:
            return False
        if value not in ("on", "off", "yes", "no", "true", "false"):
            raise OptionError(f"{self.what}: Parameter '{key}' expects 'on' or 'off'")
        return parse_bool(value, key)

    def error(self, message: str) -> OptionError:
        return OptionError(f"{self.what}: {message}")


@dataclass(frozen=True)
class NetdevFactory:
    """A NETDEV type's ``factory``: ``open`` makes the backend (not yet peered)."""

    open: Callable[[NetdevOptions], NetClient]

    def __call__(self, options: NetdevOptions) -> NetClient:
        return self.open(options)


# backend name -> {option QEMU has that pemu refuses: why}
_REFUSED: dict[str, dict[str, str]] = {}


def declare_netdev(name: str, description: str, open: Callable[[NetdevOptions], NetClient],
                   *properties: Property, refused: dict[str, str] | None = None) -> TypeInfo:
    """Register a ``-netdev NAME`` backend with its own options (``id`` is added);
    ``refused`` names QEMU options of that backend pemu does not implement, so that
    the error says so instead of calling them invalid."""
    _REFUSED[name] = dict(refused or {})
    return register(TypeInfo(name, NETDEV, description,
                             properties=COMMON_PROPERTIES + properties,
                             factory=NetdevFactory(open)))


def netdev_names() -> list[str]:
    return [t.name for t in types(NETDEV)]


def netdev_help() -> str:
    """``-netdev help``: QEMU's heading, then one type a line (the ones pemu has)."""
    return "\n".join(["Available netdev backend types:", *netdev_names()])


def netdev_type(name: str, what: str) -> TypeInfo:
    """The declared backend ``name``; QEMU's one-line error naming it otherwise."""
    try:
        return lookup(NETDEV, name)
    except RegistryError:
        why = NOT_BUILT.get(name, f"supported: {', '.join(netdev_names())}")
        raise OptionError(f"{what}: Parameter 'type' does not accept value '{name}' "
                          f"({why})") from None


def check_items(info: TypeInfo, items: list[tuple[str, str]], what: str,
                also: tuple[str, ...] = ()) -> None:
    """Every key declared (QEMU: "Invalid parameter 'X'"), given once unless repeatable,
    every bool on/off; ``also`` names keys the caller handles (-nic's model, mac)."""
    seen: set[str] = set()
    for key, value in items:
        if key in also:
            continue
        prop = info.find_property(key)
        if key in _REFUSED.get(info.name, {}):
            raise OptionError(f"{what}: {key}= {_REFUSED[info.name][key]}")
        if prop is None:
            raise OptionError(f"{what}: Invalid parameter '{key}'")
        if key in seen and prop.type != REPEATABLE:
            raise OptionError(f"{what}: Parameter '{key}' given twice")
        seen.add(key)
        if prop.type == "bool" and value not in ("on", "off", "yes", "no", "true", "false"):
            raise OptionError(f"{what}: Parameter '{key}' expects 'on' or 'off'")


def factory_of(info: TypeInfo) -> NetdevFactory:
    factory = info.factory
    assert isinstance(factory, NetdevFactory), f"{info.name} is not a netdev backend"
    return factory
