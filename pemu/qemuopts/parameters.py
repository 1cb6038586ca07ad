"""The keys of each ``key=value`` option, declared once: the option's parser refuses a
key not declared here, and QMP's ``query-command-line-options`` lists exactly these.

Management tools (libvirt) read ``query-command-line-options`` to decide which keys
they may put on the command line, so the list must be what pemu parses: a key that
is listed but refused, or accepted but not listed, breaks them.  Options are named by
QEMU's option-group names (``smp-opts`` for ``-smp``, ``boot-opts`` for ``-boot``).
"""

from __future__ import annotations

from pemu.qemuopts.keyval import OptionError

# QEMU's CommandLineParameterType values
STRING, BOOLEAN, NUMBER, SIZE = "string", "boolean", "number", "size"

_PARAMETERS: dict[str, dict[str, str]] = {}


def declare(group: str, params: dict[str, str]) -> str:
    """Declare the keys (name -> type) of the option group ``group``."""
    _PARAMETERS[group] = dict(params)
    return group


def declared() -> dict[str, dict[str, str]]:
    """Every declared option group and its keys, sorted by group."""
    return {g: dict(p) for g, p in sorted(_PARAMETERS.items())}


def check_keys(group: str, opts: dict[str, str], what: str) -> None:
    """Refuse a key ``group`` does not declare, in QEMU's words."""
    for key in opts:
        if key not in _PARAMETERS[group]:
            raise OptionError(f"{what}: Invalid parameter '{key}'")
