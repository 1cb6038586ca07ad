"""Who may use a TLS service: ``authz-simple``, ``authz-list``, ``authz-list-file``.

The identity is the client's x509 distinguished name in RFC 4514 form
(``CN=laptop.example.com,O=Example Org,L=London,ST=London,C=GB``, as QEMU prints it) or
its PSK username.

  -object authz-simple,id=ID,identity=NAME
  -object authz-list,id=ID,policy=deny,rules.0.match=NAME,rules.0.policy=allow
          [,rules.0.format=exact|glob]...
  -object authz-list-file,id=ID,filename=FILE[,refresh=on]
          FILE: {"policy": "deny", "rules": [{"match": ..., "policy": ..., "format": ...}]}
Rules are tried in order; the first match decides, else ``policy`` (default deny).
"""

from __future__ import annotations

import fnmatch
import json
import os
import threading
from dataclasses import dataclass

from pemu.crypto.objects import AUTHZ_TYPES, register_object_type
from pemu.crypto.secret import SecretError
from pemu.qemuopts.keyval import parse_bool

SIMPLE, LIST, LIST_FILE = AUTHZ_TYPES
_POLICIES = ("allow", "deny")
_FORMATS = ("exact", "glob")


@dataclass(frozen=True)
class Rule:
    match: str
    allow: bool
    glob: bool

    def matches(self, identity: str) -> bool:
        return fnmatch.fnmatchcase(identity, self.match) if self.glob \
            else identity == self.match


def _choice(value, allowed: tuple[str, ...], what: str) -> str:
    if value not in allowed:
        raise SecretError(f"{what} must be one of {', '.join(allowed)}, not '{value}'")
    return value


def _rules(entries: list[dict], where: str) -> list[Rule]:
    rules = []
    for n, entry in enumerate(entries):
        if not isinstance(entry, dict) or not isinstance(entry.get("match"), str):
            raise SecretError(f"{where}: rule {n} needs a string 'match'")
        policy = _choice(entry.get("policy", "deny"), _POLICIES, f"{where} rule {n} policy")
        fmt = _choice(entry.get("format", "exact"), _FORMATS, f"{where} rule {n} format")
        rules.append(Rule(entry["match"], policy == "allow", fmt == "glob"))
    return rules


class Authz:
    id = ""

    @staticmethod
    def check_keys(opts: dict[str, str], kind: str, allowed: set[str]) -> None:
        unknown = {k for k in set(opts) - allowed - {"qom-type", "id", "loaded"}
                   if not (kind == LIST and k.startswith("rules."))}
        if unknown:
            # a DN's commas must be doubled on the command line: "CN=a,,O=b"
            raise SecretError(f"{kind} '{opts['id']}': Property '{sorted(unknown)[0]}' not "
                              "found (write a comma inside a value as ',,')")

    def is_allowed(self, identity: str | None) -> bool:
        raise NotImplementedError


class SimpleAuthz(Authz):
    def __init__(self, store, opts: dict[str, str]) -> None:
        self.id = opts["id"]
        self.check_keys(opts, SIMPLE, {"identity"})
        if "identity" not in opts:
            raise SecretError(f"{SIMPLE} '{self.id}': parameter 'identity' is missing")
        self.identity = opts["identity"]

    def is_allowed(self, identity: str | None) -> bool:
        return identity is not None and identity == self.identity


class ListAuthz(Authz):
    def __init__(self, store, opts: dict[str, str]) -> None:
        self.id = opts["id"]
        self.check_keys(opts, LIST, {"policy"})
        self.default_allow = _choice(opts.get("policy", "deny"), _POLICIES,
                                     f"{LIST} '{self.id}' policy") == "allow"
        by_index: dict[int, dict] = {}
        for key, value in opts.items():
            if key.startswith("rules."):
                parts = key.split(".", 2)
                index = parts[1] if len(parts) > 1 else ""
                field = parts[2] if len(parts) > 2 else ""
                if not index.isdigit() or field not in ("match", "policy", "format"):
                    raise SecretError(f"{LIST} '{self.id}': unknown parameter '{key}'")
                by_index.setdefault(int(index), {})[field] = value
        self.rules = _rules([by_index[i] for i in sorted(by_index)], f"{LIST} '{self.id}'")

    def is_allowed(self, identity: str | None) -> bool:
        if identity is None:
            return False
        for rule in self.rules:
            if rule.matches(identity):
                return rule.allow
        return self.default_allow


class ListFileAuthz(ListAuthz):
    """The list read from a JSON file; with ``refresh=on`` it is read again whenever the
    file changes (checked at each decision: cheaper than a watcher thread)."""

    def __init__(self, store, opts: dict[str, str]) -> None:
        self.id = opts["id"]
        self.check_keys(opts, LIST_FILE, {"filename", "refresh"})
        self.filename = opts.get("filename")
        if not self.filename:
            raise SecretError(f"{LIST_FILE} '{self.id}': parameter 'filename' is missing")
        self.refresh = parse_bool(opts.get("refresh", "off"), "refresh")
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._load()

    def _load(self) -> None:
        where = f"{LIST_FILE} '{self.id}'"
        try:
            st = os.stat(self.filename)
            with open(self.filename, encoding="utf-8") as f:
                data = json.load(f)
        except (OSError, ValueError) as e:
            raise SecretError(f"{where}: cannot read '{self.filename}': "
                              f"{getattr(e, 'strerror', None) or e}") from None
        if not isinstance(data, dict) or not isinstance(data.get("rules", []), list):
            raise SecretError(f"{where}: expected an object with a 'rules' list")
        self.default_allow = _choice(data.get("policy", "deny"), _POLICIES,
                                     f"{where} policy") == "allow"
        self.rules = _rules(data.get("rules", []), where)
        self._stamp = (st.st_mtime_ns, st.st_size)

    def is_allowed(self, identity: str | None) -> bool:
        if self.refresh:
            with self._lock:
                try:
                    st = os.stat(self.filename)
                    if (st.st_mtime_ns, st.st_size) != self._stamp:
                        self._load()
                except (OSError, SecretError):
                    return False  # a broken list allows nobody until it is fixed
        return super().is_allowed(identity)


register_object_type(SIMPLE, SimpleAuthz)
register_object_type(LIST, ListAuthz)
register_object_type(LIST_FILE, ListFileAuthz)
