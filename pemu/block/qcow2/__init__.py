"""qcow2 format driver (see docs/BLOCK.md); this file declares it to the registry."""

from pemu.qom.registry import Property

from ..driver_info import SIZE_OPTION, declare
from ..luks import ENCRYPTION_OPTIONS
from .create import PREALLOC_MODES, create_qcow2, create_qcow2_from_options
from .driver import Qcow2Node, open_qcow2
from .format import MAGIC


def probe_qcow2(head: bytes, filename: str) -> int:
    return 100 if head.startswith(MAGIC) else 0


_ENCRYPT = tuple(Property(f"encrypt.{p.name}", p.type, description=p.description)
                 for p in ENCRYPTION_OPTIONS)

# -o keys in the order qemu-img prints them in "Formatting ..." (given or defaulted)
CREATE_OPTIONS = (
    Property("encryption", "bool", description="Encrypt the image with format 'aes'. "
                                               "(Deprecated in favor of encrypt.format=aes)"),
    Property("encrypt.format", "str", description="Encrypt the image, format choices: "
                                                  "'aes', 'luks'"),
    *_ENCRYPT,
    Property("cluster_size", "size", "65536", "qcow2 cluster size"),
    Property("extended_l2", "bool", "off", "Extended L2 tables"),
    Property("preallocation", "str", description="Preallocation mode (allowed values: "
                                                 f"{', '.join(PREALLOC_MODES)})"),
    Property("compression_type", "str", "zlib",
             "Compression method used for image cluster compression"),
    SIZE_OPTION,
    Property("compat", "str", description="Compatibility level (v2 [0.10] or v3 [1.1])"),
    Property("backing_file", "str", description="File name of a base image"),
    Property("backing_fmt", "str", description="Image format of the base image"),
    Property("lazy_refcounts", "bool", "off", "Postpone refcount updates"),
    Property("refcount_bits", "num", "16", "Width of a reference count entry in bits"),
)

declare("qcow2", "QEMU copy-on-write image, version 2 and 3", probe=probe_qcow2,
        open=open_qcow2, create=create_qcow2_from_options, compression=True,
        properties=(_ENCRYPT[0], Property("check-mode", "bool", "off",
                                          "open a corrupt image to check or repair it"),
                    Property("cache-size", "size", description="L2 and refcount caches "
                             "together, bytes (at most 256 MiB each)"),
                    Property("l2-cache-size", "size", "8M", "L2 table cache, bytes"),
                    Property("refcount-cache-size", "size", "16M",
                             "refcount block cache, bytes")),
        create_options=CREATE_OPTIONS)

__all__ = ["CREATE_OPTIONS", "Qcow2Node", "create_qcow2", "open_qcow2"]
