"""One QMP conversation: greeting, capabilities negotiation, dispatch, replies, events.

The session does not know its transport.  Bytes from the client go to ``feed``
(from any thread); replies and events leave through the ``send`` callable given at
construction.  Commands run one at a time on the session's own worker thread, so a
slow command (``stop`` waiting for vCPUs) never stalls the I/O thread that feeds
other monitors, and all sessions share one lock so commands from two monitors never
interleave inside the machine.
"""

from __future__ import annotations

import json
import queue
import sys
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass

from pemu import threads
from pemu.monitor.errors import COMMAND_NOT_FOUND, QMPError
from pemu.monitor.json_stream import JSONStreamSplitter, ParseError
from pemu.monitor.schema import Schema
from pemu.version import PEMU_VERSION, QEMU_COMPAT_VERSION

_MAJOR, _MINOR, _MICRO = QEMU_COMPAT_VERSION
VERSION = {"qemu": {"major": _MAJOR, "minor": _MINOR, "micro": _MICRO},
           "package": f"pemu {PEMU_VERSION}"}
# Commands allowed before qmp_capabilities, as in QEMU.
_NEGOTIATION_COMMANDS = {"qmp_capabilities"}
MAX_PENDING = 64  # requests queued behind a slow command before we refuse more

_command_lock = threading.RLock()


@dataclass
class CommandContext:
    """What a command handler may use: the machine, the monitor set, this session."""

    machine: object  # MonitoredMachine
    monitors: object  # MonitorSet
    session: QMPSession | None


class QMPSession:
    def __init__(self, schema: Schema, context_factory: Callable[[QMPSession], CommandContext],
                 send: Callable[[bytes], None], events=None, on_close=None) -> None:
        self.schema = schema
        self.context = context_factory(self)
        self._send_raw = send
        self._send_lock = threading.Lock()
        self._splitter = JSONStreamSplitter()
        self._requests: queue.Queue = queue.Queue(MAX_PENDING)
        self.negotiated = False
        self.closed = False
        self._events = events
        self._on_close = on_close
        self._worker = threads.start_daemon(self._work, name="pemu-qmp")

    # -- output ---------------------------------------------------------------------
    def send(self, message: dict[str, object]) -> None:
        data = json.dumps(message, separators=(", ", ": ")).encode() + b"\r\n"
        with self._send_lock:
            if not self.closed:
                self._send_raw(data)

    def start(self) -> None:
        """Send the greeting (call once the client is connected)."""
        self.send({"QMP": {"version": VERSION, "capabilities": []}})

    def _on_event(self, message: dict[str, object]) -> None:
        if self.negotiated:  # events start after capabilities negotiation
            self.send(message)

    # -- input ------------------------------------------------------------------------
    def feed(self, data: bytes) -> None:
        for item in self._splitter.feed(data):
            try:
                self._requests.put_nowait(item)
            except queue.Full:
                self.send({"error": QMPError("too many pending requests").to_wire()})

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self._events is not None:
            self._events.unsubscribe(self._on_event)
        try:
            self._requests.put_nowait(None)
        except queue.Full:
            pass
        if self._on_close is not None:
            self._on_close(self)

    def _work(self) -> None:
        while True:
            item = self._requests.get()
            if item is None or self.closed:
                return
            reply = self.handle(item)
            if reply is not None:
                self.send(reply)

    # -- dispatch ---------------------------------------------------------------------
    def handle(self, item: object) -> dict[str, object] | None:
        """One request -> its reply (never raises: errors become error replies)."""
        if isinstance(item, ParseError):
            return {"error": QMPError(item.desc).to_wire()}
        request_id = item.get("id") if isinstance(item, dict) else None
        try:
            result = self._dispatch(item)
        except QMPError as e:
            reply: dict[str, object] = {"error": e.to_wire()}
        except Exception as e:  # noqa: BLE001 - a handler bug must not kill the monitor
            print("pemu: internal error in a QMP command:", file=sys.stderr)
            traceback.print_exc()
            reply = {"error": QMPError(f"internal error: {e}").to_wire()}
        else:
            reply = {"return": result}
        if isinstance(item, dict) and "id" in item:
            reply["id"] = request_id
        return reply

    def _dispatch(self, item: object) -> object:
        if not isinstance(item, dict):
            raise QMPError("QMP input must be a JSON object")
        if "exec-oob" in item:
            raise QMPError("QMP input member 'exec-oob' is not supported: out-of-band "
                           "execution was not negotiated")
        for key in item:
            if key not in ("execute", "arguments", "id", "control"):
                raise QMPError(f"QMP input member '{key}' is unexpected")
        name = item.get("execute")
        if name is None:
            raise QMPError("QMP input lacks member 'execute'")
        if not isinstance(name, str):
            raise QMPError("QMP input member 'execute' must be a string")
        command = self.schema.commands.get(name)
        if command is None:
            raise QMPError(f"The command {name} has not been found", COMMAND_NOT_FOUND)
        if not self.negotiated and name not in _NEGOTIATION_COMMANDS:
            raise QMPError("Expecting capabilities negotiation with 'qmp_capabilities'",
                           COMMAND_NOT_FOUND)
        if self.negotiated and name == "qmp_capabilities":
            raise QMPError("Capabilities negotiation is already complete, command ignored",
                           COMMAND_NOT_FOUND)
        args = self.schema.check_arguments(command, item.get("arguments"))
        kwargs = {k.replace("-", "_"): v for k, v in args.items()}
        with _command_lock:
            result = command.handler(self.context, **kwargs)
        return {} if result is None else result

    def negotiation_done(self) -> None:
        """Called by qmp_capabilities: from now on, commands and events flow."""
        self.negotiated = True
        if self._events is not None:
            self._events.subscribe(self._on_event)
