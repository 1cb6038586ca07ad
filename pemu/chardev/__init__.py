"""Character device backends: where guest serial output goes and keyboard input comes from.

Frontends (UART, virtio-console, monitor) use only ``Chardev.write``,
``Chardev.set_receiver(callback, can_receive)``, ``accept_input``,
``set_event_handler`` (OPENED/CLOSED, e.g. a socket client came or went) and ``close``.
Boards build backends from the command line with ``ChardevRegistry``.  Importing this
package imports every backend module, and so declares every backend (backend.py).
"""

from pemu.chardev.base import CHR_EVENT_CLOSED, CHR_EVENT_OPENED, Chardev, ChardevError
from pemu.chardev.mux import MuxChardev, MuxFrontend, set_quit_handler
from pemu.chardev.pty import PtyChardev
from pemu.chardev.registry import ChardevRegistry
from pemu.chardev.ringbuf import RingbufChardev
from pemu.chardev.simple import FileChardev, NullChardev
from pemu.chardev.socket import SocketChardev
from pemu.chardev.stdio import StdioChardev

__all__ = [
    "CHR_EVENT_CLOSED", "CHR_EVENT_OPENED", "Chardev", "ChardevError", "ChardevRegistry",
    "FileChardev", "MuxChardev", "MuxFrontend", "NullChardev", "PtyChardev", "RingbufChardev",
    "SocketChardev", "StdioChardev", "set_quit_handler",
]
