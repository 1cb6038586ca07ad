"""``-blockdev``: block nodes by name, as libvirt writes them, made into the one-dict
spelling ``open_drive`` takes, so a ``-device ...,drive=NODE`` finds them as it finds
a ``-drive id=``.

libvirt 9.0 gives every disk two nodes, a protocol node and a format node over it::

    -blockdev {"driver":"file","filename":"/d.qcow2","node-name":"libvirt-1-storage",...}
    -blockdev {"node-name":"libvirt-1-format","driver":"qcow2","file":"libvirt-1-storage"}
    -device virtio-blk-pci,drive=libvirt-1-format,...

A node that another node names as its ``file`` is not a drive of its own; a top node
is the drive, with the protocol node's file name and I/O options folded in.  pemu's
block layer opens one format over one file, so a node graph deeper than that (a
format over a format, a format over a filter) is refused with its name.
"""

from __future__ import annotations

from pemu.qemuopts.json_options import NULL
from pemu.qemuopts.keyval import OptionError

# a protocol node's options that describe the I/O of the whole drive
_FILE_IO_KEYS = ("discard", "cache.direct", "cache.no-flush", "aio", "read-only")


def _node_name(opts: dict[str, str]) -> str:
    name = opts.get("node-name")
    if not name:
        raise OptionError(f"-blockdev driver={opts.get('driver', '')}: Parameter "
                          "'node-name' is missing")
    if "driver" not in opts:
        raise OptionError(f"-blockdev node-name={name}: Parameter 'driver' is missing")
    return name


def blockdev_drives(nodes: list[dict[str, str]]) -> dict[str, dict[str, str]]:
    """The drives the ``-blockdev`` nodes make: top node-name -> open_drive options."""
    by_name: dict[str, dict[str, str]] = {}
    for opts in nodes:
        name = _node_name(opts)
        if name in by_name:
            raise OptionError(f"-blockdev node-name={name}: Duplicate nodes with node-name="
                              f"'{name}'")
        by_name[name] = opts
    children = {o["file"] for o in nodes if "file" in o}
    drives: dict[str, dict[str, str]] = {}
    for name, opts in by_name.items():
        if name in children:
            continue  # a protocol node under a format node
        drive = dict(opts)
        backing = drive.pop("backing", NULL)
        if backing != NULL:
            raise OptionError(f"-blockdev node-name={name}: backing={backing}: a backing "
                              "node given on the command line is not implemented in pemu "
                              "(the image's own backing file is opened)")
        ref = drive.pop("file", None)
        if ref is not None:
            child = by_name.get(ref)
            if child is None:
                raise OptionError(f"-blockdev node-name={name}: Cannot find device={ref} "
                                  f"nor node-name={ref}")
            if child["driver"] != "file" or "file" in child:
                raise OptionError(f"-blockdev node-name={name}: a format node over a "
                                  f"'{child['driver']}' node is not implemented in pemu "
                                  "(only a format over a file node)")
            drive["file.filename"] = child.get("filename", "")
            for key in _FILE_IO_KEYS:
                if key in child and key not in drive:
                    drive[key] = child[key]
        drives[name] = drive
    return drives
