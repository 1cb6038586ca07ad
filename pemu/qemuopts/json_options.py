"""QEMU's JSON form of option values: ``-device {"driver":"virtio-blk-pci","id":"d0"}``.

libvirt writes ``-object``, ``-device``, ``-netdev``, ``-blockdev`` and ``-audiodev`` as
JSON objects.  QEMU turns such an object into the same flat keys its ``a=1,b=2`` form
gives (nested objects become dotted keys, lists numbered ones), so pemu does the same
and every option parser downstream sees one shape: a dict of strings.
"""

from __future__ import annotations

import json

from pemu.qemuopts.keyval import OptionError, parse_keyval

NULL = "null"  # the value of a key given as JSON null where null is allowed


def is_json_value(text: str) -> bool:
    """QEMU's rule: a value that starts with ``{`` is JSON."""
    return text.lstrip().startswith("{")


def _flatten(value: object, key: str, out: dict[str, str], what: str,
             nullable: tuple[str, ...]) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _flatten(v, f"{key}.{k}" if key else k, out, what, nullable)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _flatten(v, f"{key}.{i}", out, what, nullable)
    elif value is None and key in nullable:
        out[key] = NULL
    elif isinstance(value, bool):  # before int: bool is an int in Python
        out[key] = "on" if value else "off"
    elif isinstance(value, int | float | str):
        out[key] = str(value)
    else:
        raise OptionError(f"{what}: Parameter '{key}' has a null value")


def parse_json_option(text: str, option: str,
                      nullable: tuple[str, ...] = ()) -> dict[str, str]:
    """A JSON option value as flat string keys; OptionError names the option.  The
    keys in ``nullable`` may be JSON null (their value is then ``NULL``)."""
    what = f"-{option} {text}"
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise OptionError(f"{what}: JSON parse error: {e.msg}") from None
    if not isinstance(value, dict):
        raise OptionError(f"{what}: JSON value must be an object")
    out: dict[str, str] = {}
    _flatten(value, "", out, what, nullable)
    return out


def parse_option_value(text: str, implied_key: str | None = None, option: str = "",
                       nullable: tuple[str, ...] = ()) -> dict[str, str]:
    """``-OPTION`` value in either form: JSON object or ``a=1,b=2``."""
    if is_json_value(text):
        return parse_json_option(text, option, nullable)
    return parse_keyval(text, implied_key=implied_key, option=option)


def keyval_text(opts: dict[str, str], first: str | None = None) -> str:
    """The ``a=1,b=2`` text of flat keys (commas doubled); ``first`` is the implied key
    written bare in front (``user,id=n0`` for -netdev's ``type``)."""
    items = [v.replace(",", ",,") for k, v in opts.items() if k == first]
    items += [f"{k}={v.replace(',', ',,')}" for k, v in opts.items() if k != first]
    return ",".join(items)
