"""The one store of security objects, by id: secrets, TLS credentials, authorization.

``-object`` options (and QMP ``object-add``) create them; every user (LUKS and qcow2
encryption, TLS key passwords, encrypted secrets, monitors, chardevs, migration) looks
them up here, so each kind of secret has one way in and one set of checks.  The
process-wide store (``user_objects()``) is what the command line fills; a test may
build a private ``ObjectStore``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from pemu.crypto.secret import SecretError, build_secret

SECRET = "secret"
Factory = Callable[["ObjectStore", dict[str, str]], object]
_FACTORIES: dict[str, Factory] = {}


# The kinds the store keeps besides secrets; their modules (tls_creds.py, authz.py)
# register the factories, and the package imports them, so every user sees them.
TLS_TYPES = ("tls-creds-x509", "tls-creds-psk")
AUTHZ_TYPES = ("authz-simple", "authz-list", "authz-list-file")


def register_object_type(qom_type: str, factory: Factory) -> None:
    """``factory(store, options)`` builds the object; it may look up others in store."""
    _FACTORIES[qom_type] = factory


def handles(qom_type: str | None) -> bool:
    return qom_type in _FACTORIES


class ObjectStore:
    def __init__(self) -> None:
        self._objects: dict[str, tuple[str, object]] = {}
        self._options: dict[str, dict[str, str]] = {}
        self._lock = threading.Lock()

    def add(self, opts: dict[str, str]) -> object | None:
        """Create the object ``opts`` describes; None for a type this store does not keep
        (memory backends, rng...: other parts of pemu create those)."""
        qom_type = opts.get("qom-type")
        factory = _FACTORIES.get(qom_type or "")
        if factory is None:
            return None
        oid = opts.get("id")
        if not oid:
            raise SecretError(f"{qom_type}: Parameter 'id' is missing")
        if oid in self._objects:
            raise SecretError(f"attempt to add duplicate property '{oid}' to object "
                              "(type 'container')")
        obj = factory(self, opts)
        with self._lock:
            self._objects[oid] = (qom_type, obj)
            self._options[oid] = dict(opts)
        return obj

    def sync(self, objects: list[dict[str, str]]) -> None:
        """Make the store hold the command line's ``objects``: each one this store keeps
        is created, or re-created when an object of that id has other options (one
        process may run several machines one after the other, as the tests do)."""
        seen: set[str] = set()
        for opts in objects:
            oid = opts.get("id", "")
            if oid in seen:
                raise SecretError(f"attempt to add duplicate property '{oid}' to object "
                                  "(type 'container')")
            seen.add(oid)
            if self._options.get(oid) == opts:
                continue
            if handles(opts.get("qom-type")):
                self.remove(oid)
            self.add(opts)

    def remove(self, oid: str) -> bool:
        with self._lock:
            self._options.pop(oid, None)
            return self._objects.pop(oid, None) is not None

    def types(self) -> dict[str, str]:
        """id -> qom-type of everything in the store (for qom-list /objects)."""
        return {oid: t for oid, (t, _) in self._objects.items()}

    def get(self, oid: str, qom_types: tuple[str, ...], what: str) -> object:
        entry = self._objects.get(oid)
        if entry is None or entry[0] not in qom_types:
            raise SecretError(f"No {what} with id '{oid}' found")
        return entry[1]

    def secret(self, oid: str) -> bytes:
        return self.get(oid, (SECRET,), "secret")  # type: ignore[return-value]

    def secret_text(self, oid: str) -> str:
        try:
            return self.secret(oid).decode()
        except UnicodeDecodeError:
            raise SecretError(f"Data from secret {oid} is not valid UTF-8") from None

    def secrets(self) -> dict[str, bytes]:
        """Every secret's value by id (the dict the block layer's drivers take)."""
        return {oid: obj for oid, (t, obj) in self._objects.items()
                if t == SECRET}  # type: ignore[misc]

    def tls_creds(self, oid: str):
        return self.get(oid, TLS_TYPES, "TLS credentials")

    def authz(self, oid: str):
        return self.get(oid, AUTHZ_TYPES, "authorization object")

    def clear(self) -> None:
        with self._lock:
            self._objects.clear()
            self._options.clear()


register_object_type(SECRET, lambda store, opts: build_secret(opts, store.secret))

_store = ObjectStore()


def user_objects() -> ObjectStore:
    """The process-wide store that ``-object`` fills."""
    return _store
