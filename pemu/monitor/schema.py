"""The QMP schema: types, commands and events, declared once.

Each command is registered with its argument types; the same declarations check the
arguments of every call (so handlers receive well-typed Python values) and produce
``query-qmp-schema``'s answer, so the introspection a client sees is the schema we
actually enforce.  Type expressions follow QAPI: a builtin name (``str``, ``int``,
``bool``, ``number``, ``any``, ``null``), a declared struct or enum name, or ``[T]``
for an array; a member name starting with ``*`` is optional.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from pemu.monitor.errors import QMPError

BUILTIN_JSON_TYPES = {"str": "string", "int": "int", "size": "int", "bool": "boolean",
                      "number": "number", "any": "value", "null": "null"}
_EXPECT = {"str": "string", "int": "integer", "size": "integer", "bool": "boolean",
           "number": "number", "null": "null"}

Handler = Callable[..., object]


@dataclass
class Member:
    name: str
    type: str
    optional: bool


def _members(spec: dict[str, str]) -> list[Member]:
    return [Member(k.lstrip("*"), t, k.startswith("*")) for k, t in spec.items()]


@dataclass
class Command:
    name: str
    arg_type: str | None  # struct name, or None for no arguments
    ret_type: str
    handler: Handler
    allow_preconfig: bool = False
    open_args: bool = False  # other arguments pass unchecked (device_add's properties)


@dataclass
class Schema:
    structs: dict[str, list[Member]] = field(default_factory=dict)
    enums: dict[str, list[str]] = field(default_factory=dict)
    commands: dict[str, Command] = field(default_factory=dict)
    events: dict[str, str | None] = field(default_factory=dict)

    # -- declaring -------------------------------------------------------------------
    def struct(self, name: str, members: dict[str, str]) -> str:
        self.structs[name] = _members(members)
        return name

    def enum(self, name: str, values: list[str]) -> str:
        self.enums[name] = list(values)
        return name

    def command(self, name: str, args: dict[str, str] | None = None, returns: str = "any",
                open_args: bool = False) -> Callable[[Handler], Handler]:
        """Decorator: register ``handler(ctx, **arguments)`` as QMP command ``name``."""
        arg_type = self.struct(f"q_obj_{name}-arg", args) if args else None

        def register(handler: Handler) -> Handler:
            self.commands[name] = Command(name, arg_type, returns, handler,
                                          open_args=open_args)
            return handler

        return register

    def event(self, name: str, data: dict[str, str] | None = None) -> None:
        self.events[name] = self.struct(f"q_obj_{name}-arg", data) if data else None

    # -- checking --------------------------------------------------------------------
    def check_arguments(self, command: Command, args: object) -> dict[str, object]:
        if args is None:
            args = {}
        if not isinstance(args, dict):
            raise QMPError("QMP input member 'arguments' must be an object")
        if command.arg_type is None:
            if args:
                raise QMPError(f"Parameter '{next(iter(args))}' is unexpected")
            return {}
        if command.open_args:
            known = {m.name for m in self.structs[command.arg_type]}
            self._check_struct(command.arg_type,
                               {k: v for k, v in args.items() if k in known}, "")
            return args
        self._check_struct(command.arg_type, args, "")
        return args

    def _check_struct(self, name: str, value: dict, where: str) -> None:
        members = self.structs[name]
        known = {m.name for m in members}
        for key in value:
            if key not in known:
                raise QMPError(f"Parameter '{where}{key}' is unexpected")
        for m in members:
            if m.name not in value:
                if not m.optional:
                    raise QMPError(f"Parameter '{where}{m.name}' is missing")
                continue
            self._check_value(m.type, value[m.name], f"{where}{m.name}")

    def _check_value(self, type_: str, value: object, where: str) -> None:
        if type_ == "any":
            return
        if type_.startswith("["):
            if not isinstance(value, list):
                raise QMPError(f"Invalid parameter type for '{where}', expected: array")
            for i, item in enumerate(value):
                self._check_value(type_[1:-1], item, f"{where}[{i}]")
            return
        if type_ in self.structs:
            if not isinstance(value, dict):
                raise QMPError(f"Invalid parameter type for '{where}', expected: object")
            self._check_struct(type_, value, f"{where}.")
            return
        if type_ in self.enums:
            if not isinstance(value, str):
                raise QMPError(f"Invalid parameter type for '{where}', expected: string")
            if value not in self.enums[type_]:
                raise QMPError(f"Parameter '{where}' does not accept value '{value}'")
            return
        ok = {
            "str": isinstance(value, str),
            "int": isinstance(value, int) and not isinstance(value, bool),
            "size": isinstance(value, int) and not isinstance(value, bool) and value >= 0,
            "bool": isinstance(value, bool),
            "number": isinstance(value, int | float) and not isinstance(value, bool),
            "null": value is None,
        }[type_]
        if not ok:
            raise QMPError(f"Invalid parameter type for '{where}', expected: {_EXPECT[type_]}")

    # -- introspection -----------------------------------------------------------------
    def introspect(self) -> list[dict[str, object]]:
        """``query-qmp-schema``: every command, event and the types they use."""
        out: list[dict[str, object]] = []
        used: set[str] = set()
        for cmd in sorted(self.commands.values(), key=lambda c: c.name):
            arg = cmd.arg_type or "q_empty"
            out.append({"name": cmd.name, "meta-type": "command", "arg-type": arg,
                        "ret-type": cmd.ret_type, "allow-oob": False})
            used.update((arg, cmd.ret_type))
        for name, arg in sorted(self.events.items()):
            out.append({"name": name, "meta-type": "event", "arg-type": arg or "q_empty"})
            used.add(arg or "q_empty")
        for type_name in sorted(self._closure(used)):
            out.append(self._type_info(type_name))
        return out

    def _closure(self, roots: set[str]) -> set[str]:
        seen: set[str] = set()
        todo = list(roots)
        while todo:
            t = todo.pop()
            if t in seen:
                continue
            seen.add(t)
            if t.startswith("["):
                todo.append(t[1:-1])
            elif t in self.structs:
                todo.extend(m.type for m in self.structs[t])
        return seen

    def _type_info(self, name: str) -> dict[str, object]:
        if name == "q_empty":
            return {"name": name, "meta-type": "object", "members": []}
        if name.startswith("["):
            return {"name": name, "meta-type": "array", "element-type": name[1:-1]}
        if name in self.enums:
            values = self.enums[name]
            return {"name": name, "meta-type": "enum", "values": values,
                    "members": [{"name": v} for v in values]}
        if name in self.structs:
            members: list[dict[str, object]] = []
            for m in self.structs[name]:
                entry: dict[str, object] = {"name": m.name, "type": m.type}
                if m.optional:
                    entry["default"] = None
                members.append(entry)
            return {"name": name, "meta-type": "object", "members": members}
        if name in BUILTIN_JSON_TYPES:
            return {"name": name, "meta-type": "builtin", "json-type": BUILTIN_JSON_TYPES[name]}
        raise KeyError(f"schema type '{name}' is not declared")

    def check_complete(self) -> None:
        """Every referenced type is declared (run by the tests, cheap at startup)."""
        for info in self.introspect():
            assert info  # _type_info raises on an undeclared name
