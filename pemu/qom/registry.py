"""The type registry: machines, CPU models, devices and block drivers declare
themselves here.

The shape of QEMU's QOM ``TypeInfo`` + ``type_init``: each type says, in its own file,
its name, what kind of thing it is, its properties (name, type, default, help) and,
for a device, the bus it plugs into.  Everything that lists or checks types reads this
one table: ``-machine help``, ``-cpu help``, ``-device help``, ``-device NAME,help``,
``-chardev help``, the property check of ``-device``/``-M``/``-chardev`` (an unknown
property is refused, never ignored), and the monitor's ``qom-list-types``,
``device-list-properties``, ``query-machines`` and ``chardev-add``; for block drivers
(pemu/block/driver_info.py) format probing, ``-drive format=``, pemu-img's format lists
and QMP's ``BlockdevDriver``.

This module imports nothing of pemu: every layer may declare types in it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

MACHINE = "machine"
CPU = "cpu"
DEVICE = "device"
CHARDEV = "chardev"  # -chardev backends (pemu/chardev/backend.py)
NETDEV = "netdev"  # -netdev backends (pemu/net/backend.py)
BLOCK_DRIVER = "block-driver"  # image formats and protocols (pemu/block/driver_info.py)
OBJECT = "object"  # -object types that are not devices (pemu/memory/backends.py)
KINDS = (MACHINE, CPU, DEVICE, CHARDEV, NETDEV, BLOCK_DRIVER, OBJECT)


class RegistryError(ValueError):
    """A type or property that does not exist; the message is for the user."""


@dataclass(frozen=True)
class Property:
    """One property a type accepts (``-device NAME,PROP=VALUE``)."""

    name: str
    type: str = "str"  # QEMU's spelling: str, bool, uint32, size, link<...>, ...
    default: str | None = None
    description: str = ""
    choices: tuple[str, ...] = ()  # the values pemu implements (empty: any)


@dataclass(frozen=True)
class TypeInfo:
    """A registered type.  ``arch`` ties machines and CPU models to one target (None:
    any); ``bus`` is the bus a device plugs into; ``factory`` builds the object, with a
    signature each kind defines (devices: see hw/virtio/from_config.py)."""

    name: str
    kind: str
    description: str
    properties: tuple[Property, ...] = ()
    arch: str | None = None
    bus: str | None = None
    aliases: tuple[str, ...] = ()
    is_default: bool = False
    factory: Callable[..., object] | None = field(default=None, compare=False)

    def find_property(self, name: str) -> Property | None:
        for p in self.properties:
            if p.name == name:
                return p
        return None

    @property
    def qom_type(self) -> str:
        """The name QMP uses: machines and CPUs carry QEMU's type suffixes."""
        if self.kind == MACHINE:
            return f"{self.name}-machine"
        if self.kind == CPU:
            return f"{self.name}-{self.arch}-cpu"
        return self.name


# (kind, arch, name) -> type; arch None for types every target has (devices)
_TYPES: dict[tuple[str, str | None, str], TypeInfo] = {}


def register(info: TypeInfo) -> TypeInfo:
    """Declare a type (at import of the file that implements it)."""
    if info.kind not in KINDS:
        raise ValueError(f"unknown kind {info.kind!r} for type {info.name!r}")
    for name in (info.name, *info.aliases):
        key = (info.kind, info.arch, name)
        old = _TYPES.get(key)
        if old is not None and old != info:
            raise ValueError(f"{info.kind} type {name!r} is registered twice")
        _TYPES[key] = info
    return info


def types(kind: str, arch: str | None = None, buses: Iterable[str] | None = None
          ) -> list[TypeInfo]:
    """The types of one kind (each once, aliases folded), sorted by name; ``arch``
    keeps those of that target, ``buses`` the devices that plug into one of them."""
    wanted = set(buses) if buses is not None else None
    seen = {id(t): t for (k, _, _), t in _TYPES.items() if k == kind}
    out = [t for t in seen.values()
           if (arch is None or t.arch in (None, arch))
           and (wanted is None or t.bus in wanted)]
    return sorted(out, key=lambda t: t.name)


def lookup(kind: str, name: str, arch: str | None = None) -> TypeInfo:
    """The type called ``name`` (or one of its aliases) for target ``arch`` (None:
    the only one of that name); RegistryError if none."""
    info = _TYPES.get((kind, None, name))
    if info is None and arch is not None:
        info = _TYPES.get((kind, arch, name))
    if info is None and arch is None:
        matches = [t for (k, _, n), t in _TYPES.items() if k == kind and n == name]
        info = matches[0] if len(matches) == 1 else None
    if info is None:
        raise RegistryError(f"{kind} type '{name}' not found")
    return info


def check_properties(info: TypeInfo, given: Iterable[str],
                     always: Iterable[str] = ()) -> None:
    """Refuse a property the type does not declare (QEMU: "Property 'X.Y' not
    found"); ``always`` names option keys every type takes (``driver``, ``id``)."""
    allowed = {p.name for p in info.properties} | set(always)
    for name in given:
        if name not in allowed:
            raise RegistryError(f"Property '{info.name}.{name}' not found")


def check_values(info: TypeInfo, given: dict[str, str]) -> None:
    """Refuse a value a property does not implement (the property's ``choices``)."""
    for p in info.properties:
        value = given.get(p.name)
        if value is not None and p.choices and value not in p.choices:
            raise RegistryError(f"{p.name}={value} is not supported "
                                f"(supported: {', '.join(p.choices)})")


def int_property(driver: str, opts: dict[str, str], name: str, default: int) -> int:
    """A numeric property's value (decimal or 0x...), or ``default`` when not given."""
    text = opts.get(name)
    if text is None:
        return default
    try:
        return int(text, 0)
    except ValueError:
        raise RegistryError(f"Property '{driver}.{name}' expects a number, not "
                            f"'{text}'") from None


def check_options(info: TypeInfo, given: dict[str, str],
                  always: Iterable[str] = ("type",)) -> None:
    """``check_properties`` and ``check_values`` together: what ``-M NAME,...`` and
    ``-device NAME,...`` must pass."""
    check_properties(info, given, always)
    check_values(info, given)


def checked_device(options: dict[str, str], buses: Iterable[str]) -> TypeInfo:
    """The device type a ``-device`` option names (its ``driver`` key), after checking
    that it plugs into one of ``buses`` and that every other key is a property it
    declares, with a value it implements."""
    driver = options.get("driver", "")
    info = lookup(DEVICE, driver)
    if info.bus not in set(buses):
        raise RegistryError(f"'{driver}' cannot be plugged into this machine")
    check_options(info, options, ("driver", "id"))
    return info


def help_listing(kind: str, arch: str | None = None,
                 buses: Iterable[str] | None = None) -> str:
    """``-machine help`` / ``-cpu help`` / ``-device help`` / ``-chardev help`` /
    ``-drive format=help`` text."""
    entries = types(kind, arch, buses)
    if kind == CHARDEV:
        # QEMU's heading, trailing space included (scripts match the line)
        return "\n".join(["Available chardev backend types: "]
                         + [f"  {t.name}" for t in entries])
    if kind == MACHINE:
        lines = ["Supported machines are:"]
        for t in entries:
            default = " (default)" if t.is_default else ""
            lines.append(f"{t.name:<20} {t.description}{default}")
        return "\n".join(lines)
    if kind == BLOCK_DRIVER:  # qemu-img --help and -drive format=help: one line
        return "Supported formats: " + " ".join(t.name for t in entries)
    if kind == CPU:
        lines = ["Available CPUs:"]
        lines += [f"  {t.name:<16} {t.description}" for t in entries]
        return "\n".join(lines)
    lines = []
    for bus in sorted({t.bus or "" for t in entries}):
        lines.append(f"{bus or 'Other'} devices:" if bus else "Devices:")
        for t in entries:
            if (t.bus or "") == bus:
                alias = f", alias \"{t.aliases[0]}\"" if t.aliases else ""
                lines.append(f'name "{t.name}", bus {t.bus}{alias}, desc "{t.description}"')
        lines.append("")
    return "\n".join(lines).rstrip()


def property_listing(info: TypeInfo) -> str:
    """``-device NAME,help`` text: one line per property."""
    lines = [f"{info.name} options:"]
    for p in info.properties:
        default = f" (default: {p.default})" if p.default is not None else ""
        desc = f" - {p.description}" if p.description else ""
        if p.choices:
            desc += f" [{'|'.join(p.choices)}]"
        lines.append(f"  {p.name}=<{p.type}>{desc}{default}")
    return "\n".join(lines)


__all__ = ["BLOCK_DRIVER", "CHARDEV", "CPU", "DEVICE", "MACHINE", "NETDEV", "OBJECT",
           "Property",
           "RegistryError", "TypeInfo",
           "check_options", "check_properties", "check_values", "checked_device",
           "help_listing", "lookup", "property_listing", "register", "types"]
