"""Memory backends: ``-object memory-backend-{ram,memfd,file},id=ID,size=SIZE,...`` and
``-machine ...,memory-backend=ID``, the way libvirt and the CPR procedure give a guest
its RAM.

pemu's guest RAM is one mapping per RAM region.  ``memory-backend-ram`` is anonymous
private memory (what ``-m`` gives); ``memory-backend-memfd`` (shared by default, as
QEMU's) and ``memory-backend-file,mem-path=PATH,share=on`` put it in a memfd or a
file that a new pemu process can take over without a copy (CPR: pemu/memory/
shared_ram.py, pemu/migration/cpr.py).  A backend named by ``memory-backend=`` sets
the RAM size (QEMU: it replaces ``-m``, and both must agree) and its options land in
``SystemConfig.ram_backend`` for the board (``open_ram_backing``).
``-machine aux-ram-share=on`` is accepted: pemu's auxiliary RAM (the boot ROM) is
small and travels in the migration stream whatever the setting.
"""

from __future__ import annotations

from pemu.memory.shared_ram import RamBacking, create_memfd, open_file
from pemu.qemuopts.config import SystemConfig
from pemu.qemuopts.keyval import OptionError, parse_bool, parse_size
from pemu.qom.registry import (
    OBJECT,
    Property,
    RegistryError,
    TypeInfo,
    check_options,
    lookup,
    register,
)

_SIZE = Property("size", "int", description="size of the memory region in bytes")
_SHARE = Property("share", "bool", description="mapped shared: another process (a live "
                  "update's new pemu) can map the same pages")
MEMORY_BACKEND_RAM = register(TypeInfo(
    "memory-backend-ram", OBJECT, "guest RAM in anonymous host memory", properties=(_SIZE,)))
MEMORY_BACKEND_FILE = register(TypeInfo(
    "memory-backend-file", OBJECT, "guest RAM in a file (share=on: shared with a new "
    "pemu across a live update or reboot)",
    properties=(_SIZE, _SHARE, Property("mem-path", "str", description="the file, or a "
                                        "directory to create an unlinked file in"))))
MEMORY_BACKEND_MEMFD = register(TypeInfo(
    "memory-backend-memfd", OBJECT, "guest RAM in a memfd (handed to a new pemu by a "
    "cpr-transfer live update)", properties=(_SIZE, _SHARE)))
MEMORY_BACKENDS = (MEMORY_BACKEND_RAM.name, MEMORY_BACKEND_FILE.name,
                   MEMORY_BACKEND_MEMFD.name)


def backend_size(opts: dict[str, str]) -> int:
    what = f"-object {opts['qom-type']},id={opts.get('id', '')}"
    try:
        check_options(lookup(OBJECT, opts["qom-type"]), opts, ("qom-type", "id"))
    except RegistryError as e:
        raise OptionError(f"{what}: {e}") from None
    if "size" not in opts:
        raise OptionError(f"{what}: can't create backend with size 0")
    size = parse_size(opts["size"], what="size")
    if size <= 0:
        raise OptionError(f"{what}: can't create backend with size 0")
    if opts["qom-type"] == MEMORY_BACKEND_FILE.name and not opts.get("mem-path"):
        raise OptionError(f"{what}: mem-path property not set")
    if opts["qom-type"] == MEMORY_BACKEND_MEMFD.name and not _share(opts):
        raise OptionError(f"{what}: share=off: pemu keeps a memfd's RAM shared (a "
                          "private memfd is just anonymous memory: use memory-backend-ram)")
    return size


def _share(opts: dict[str, str]) -> bool:
    default = "on" if opts["qom-type"] == MEMORY_BACKEND_MEMFD.name else "off"
    return parse_bool(str(opts.get("share", default)), "share")


def apply_memory_backends(cfg: SystemConfig, ram_size_given: bool) -> None:
    """Check every memory backend of the command line; the one ``memory-backend=`` names
    becomes the machine's RAM (its size is the RAM size)."""
    sizes = {o.get("id", ""): backend_size(o) for o in cfg.objects
             if o.get("qom-type") in MEMORY_BACKENDS}
    aux = cfg.machine.pop("aux-ram-share", "off")
    parse_bool(aux, "aux-ram-share")  # a bad value is refused; see the module docstring
    wanted = cfg.machine.pop("memory-backend", None)
    if wanted is None:
        return
    if wanted not in sizes:
        raise OptionError(f"-machine memory-backend={wanted}: Device '{wanted}' not found")
    if ram_size_given and sizes[wanted] != cfg.ram_size:
        raise OptionError("-machine memory-backend: backend memory size must be equal to "
                          "the machine memory size (-m)")
    cfg.ram_size = sizes[wanted]
    cfg.ram_backend = next(o for o in cfg.objects if o.get("id") == wanted
                           and o.get("qom-type") in MEMORY_BACKENDS)


def open_ram_backing(cfg: SystemConfig, name: str) -> RamBacking | None:
    """The host memory behind the machine's RAM, or None for anonymous memory (no
    backend, or memory-backend-ram)."""
    opts = cfg.ram_backend
    if opts is None or opts["qom-type"] == MEMORY_BACKEND_RAM.name:
        return None
    if opts["qom-type"] == MEMORY_BACKEND_MEMFD.name:
        return create_memfd(name, cfg.ram_size)
    return open_file(opts["mem-path"], cfg.ram_size, _share(opts))
