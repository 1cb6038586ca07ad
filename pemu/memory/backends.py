"""Memory backends: ``-object memory-backend-ram,id=ID,size=SIZE`` and
``-machine ...,memory-backend=ID``, the way libvirt gives a guest its RAM.

pemu's guest RAM is one anonymous private mapping per RAM region, which is exactly a
``memory-backend-ram``; so a backend named by ``memory-backend=`` sets the RAM size
(QEMU: it replaces ``-m``, and both must agree).  ``memory-backend-file`` (RAM in a
file, shared with another process) is declared because management tools take its
class for granted (libvirt 9.0 reads its properties unconditionally), but pemu cannot
map guest RAM from a file yet: creating one is refused, and it lists no property.
"""

from __future__ import annotations

from pemu.qemuopts.config import SystemConfig
from pemu.qemuopts.keyval import OptionError, parse_size
from pemu.qom.registry import (
    OBJECT,
    Property,
    RegistryError,
    TypeInfo,
    check_options,
    lookup,
    register,
)

MEMORY_BACKEND_RAM = register(TypeInfo(
    "memory-backend-ram", OBJECT, "guest RAM in anonymous host memory",
    properties=(Property("size", "int", description="size of the memory region in bytes"),)))
MEMORY_BACKEND_FILE = register(TypeInfo(
    "memory-backend-file", OBJECT, "guest RAM in a file (not implemented in pemu: "
    "creating one is refused)"))
MEMORY_BACKENDS = (MEMORY_BACKEND_RAM.name, MEMORY_BACKEND_FILE.name)


def backend_size(opts: dict[str, str]) -> int:
    what = f"-object {opts['qom-type']},id={opts.get('id', '')}"
    if opts["qom-type"] != MEMORY_BACKEND_RAM.name:
        raise OptionError(f"{what}: {opts['qom-type']} is not implemented in pemu (guest "
                          "RAM cannot be mapped from a file yet; use memory-backend-ram)")
    try:
        check_options(lookup(OBJECT, opts["qom-type"]), opts, ("qom-type", "id"))
    except RegistryError as e:
        raise OptionError(f"{what}: {e}") from None
    if "size" not in opts:
        raise OptionError(f"{what}: can't create backend with size 0")
    size = parse_size(opts["size"], what="size")
    if size <= 0:
        raise OptionError(f"{what}: can't create backend with size 0")
    return size


def apply_memory_backends(cfg: SystemConfig, ram_size_given: bool) -> None:
    """Check every memory backend of the command line; the one ``memory-backend=`` names
    becomes the machine's RAM (its size is the RAM size)."""
    sizes = {o.get("id", ""): backend_size(o) for o in cfg.objects
             if o.get("qom-type") in MEMORY_BACKENDS}
    wanted = cfg.machine.pop("memory-backend", None)
    if wanted is None:
        return
    if wanted not in sizes:
        raise OptionError(f"-machine memory-backend={wanted}: Device '{wanted}' not found")
    if ram_size_given and sizes[wanted] != cfg.ram_size:
        raise OptionError("-machine memory-backend: backend memory size must be equal to "
                          "the machine memory size (-m)")
    cfg.ram_size = sizes[wanted]
    cfg.memory_backend = wanted
