"""QMP object-add and object-del for the objects pemu can create while it runs.

Security objects (secret, tls-creds-x509/-psk, authz-*) go into the process-wide
store (pemu/crypto/objects.py) that every user looks them up in at the moment it needs
them, so an object added here is used by the next TLS handshake or password lookup,
and one deleted here is refused from then on (a service whose credentials are gone
refuses new clients rather than crash).  A memory-backend-ram is checked and listed
(pemu has no memory hot-plug to give it to); the backend that is the guest's RAM
cannot be deleted.  Every object shows under ``qom-list /objects``
(MonitoredMachine.objects).
"""

from __future__ import annotations

from pemu.crypto.objects import handles, user_objects
from pemu.memory.backends import MEMORY_BACKENDS, backend_size
from pemu.monitor.errors import QMPError
from pemu.qemuopts.keyval import OptionError, parse_keyval
from pemu.qom.registry import OBJECT, RegistryError, lookup


def _keyval_text(value: object) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value)


def flatten(value: object, prefix: str = "") -> dict[str, str]:
    """QMP's nested arguments (authz-list's ``rules: [{...}]``) in the dotted keyval
    form -object gives the factories (``rules.0.match``)."""
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list):
        items = ((str(i), v) for i, v in enumerate(value))
    else:
        return {prefix: _keyval_text(value)}
    out: dict[str, str] = {}
    for key, item in items:
        out.update(flatten(item, f"{prefix}.{key}" if prefix else str(key)))
    return out


def object_add(machine, args: dict[str, object]) -> None:
    opts = flatten(args)
    qom_type, oid = opts.get("qom-type", ""), opts.get("id", "")
    if not oid:
        raise QMPError("Parameter 'id' is missing")
    if oid in machine.objects:
        raise QMPError(f"attempt to add duplicate property '{oid}' to object "
                       "(type 'container')")
    try:
        if handles(qom_type):
            user_objects().add(opts)
        elif qom_type in MEMORY_BACKENDS:
            backend_size(opts)
        else:
            try:
                lookup(OBJECT, qom_type)
            except RegistryError:
                raise QMPError(f"Parameter 'qom-type' does not accept value "
                               f"'{qom_type}'") from None
            raise QMPError(f"object type '{qom_type}' cannot be created while pemu runs")
    except OptionError as e:
        raise QMPError(str(e)) from None
    machine.objects[oid] = opts


def object_add_text(machine, text: str) -> None:
    """HMP's ``object_add TYPE,id=ID,...`` (the -object syntax)."""
    try:
        opts = parse_keyval(text, implied_key="qom-type", option="object_add")
    except OptionError as e:
        raise QMPError(str(e)) from None
    object_add(machine, opts)


def object_del(machine, oid: str) -> None:
    if oid not in machine.objects:
        raise QMPError(f"object '{oid}' not found")
    if oid == getattr(machine, "memory_backend", None):
        raise QMPError(f"object '{oid}' is in use, can not be deleted")
    user_objects().remove(oid)
    del machine.objects[oid]


def register(schema) -> None:
    command = schema.command

    # QEMU's ObjectOptions is a union on qom-type: the properties sit next to it
    @command("object-add", {"qom-type": "str", "id": "str"}, open_args=True)
    def object_add_cmd(ctx, **args) -> None:
        # the dispatcher spells argument names as Python's; no object property has
        # an underscore of its own (QOM names use dashes), so this is exact
        object_add(ctx.machine, {k.replace("_", "-"): v for k, v in args.items()})

    @command("object-del", {"id": "str"})
    def object_del_cmd(ctx, id: str) -> None:
        object_del(ctx.machine, id)


__all__ = ["flatten", "object_add", "object_add_text", "object_del", "register"]
