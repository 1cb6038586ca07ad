"""pemu's block layer: one driver interface for every disk device and pemu-img.

See docs/BLOCK.md.  Devices use :func:`open_drive` and the returned
:class:`BlockBackend`; pemu-img uses :func:`open_image` and the node API.
"""

from .aio import AioContext
from .backend import BlockBackend
from .drive import open_drive, open_image, parse_secret_object
from .errors import BlockError
from .node import BlockNode, Extent

__all__ = ["AioContext", "BlockBackend", "BlockError", "BlockNode", "Extent", "open_drive",
           "open_image", "parse_secret_object"]
