"""The GDB remote protocol engine: one debugger connection driving a DebugTarget.

The connection thread reads packets and answers them.  Resuming (``c``, ``s``,
``vCont``) sends no reply: the reply is the stop packet, which the target reports
later from its own thread through ``_on_stop``.  While the target runs, the only
thing the client may send is Ctrl-C (0x03), which asks the target to stop.
"""

from __future__ import annotations

import sys
import threading
import traceback
from collections.abc import Callable

from pemu.gdbstub import packet as pk
from pemu.gdbstub.target import (
    SIGTRAP,
    WATCH_NAMES,
    DebugTarget,
    StopEvent,
    TargetError,
)

MAX_MEMORY_READ = (pk.MAX_PACKET - 16) // 2


class GdbSession:
    def __init__(self, target: DebugTarget, send: Callable[[bytes], None],
                 on_close: Callable[[], None] | None = None) -> None:
        self.target = target
        self._send_raw = send
        self._send_lock = threading.Lock()
        self._reader = pk.PacketReader()
        self.no_ack = False
        self.running = False
        self.closed = False
        self.last_stop = StopEvent(SIGTRAP)
        self.g_thread: int | None = None  # Hg: registers and memory
        self.c_thread: int | None = None  # Hc: which thread s/c apply to
        self._last_packet = b""
        self._on_close = on_close
        self.extended = False
        target.on_stop = self._on_stop

    # -- output ----------------------------------------------------------------------
    def _send_packet(self, payload: bytes) -> None:
        data = pk.frame(payload)
        with self._send_lock:
            self._last_packet = data
            self._send_raw(data)

    # -- input -------------------------------------------------------------------------
    def feed(self, data: bytes) -> None:
        for event in self._reader.feed(data):
            if event == pk.INTERRUPT:
                if self.running:
                    self.target.interrupt()
            elif event == pk.NAK:
                with self._send_lock:
                    if self._last_packet and not self.no_ack:
                        self._send_raw(self._last_packet)
            elif event in (pk.BAD_PACKET, pk.OVERSIZED):
                if not self.no_ack:
                    self._send_raw(b"-")
            elif isinstance(event, pk.Packet):
                if not self.no_ack:
                    self._send_raw(b"+")
                self._handle(pk.expand_rle(event.payload) if event.payload[:1] != b"X"
                             else event.payload)

    def _handle(self, payload: bytes) -> None:
        if self.closed:
            return
        try:
            reply = self.dispatch(payload)
        except TargetError as e:
            reply = b"E%02x" % (e.errno & 0xFF)
        except (ValueError, IndexError, KeyError):
            reply = b"E16"  # EINVAL: a malformed packet
        except Exception:  # noqa: BLE001 - a stub bug must not kill the target
            print("pemu: gdbstub: internal error on packet "
                  f"{payload[:40]!r}", file=sys.stderr)
            traceback.print_exc()
            reply = b"E01"
        if reply is not None:
            self._send_packet(reply)

    # -- stops ---------------------------------------------------------------------------
    def _on_stop(self, event: StopEvent) -> None:
        self.last_stop = event
        if event.thread is not None:
            self.g_thread = self.c_thread = event.thread
        if not self.running:
            return  # a stop nobody waits for (e.g. the initial one)
        self.running = False
        self._send_packet(self._stop_reply(event))

    def _stop_reply(self, event: StopEvent) -> bytes:
        if event.exited is not None:
            return b"W%02x" % (event.exited & 0xFF)
        if event.killed_by is not None:
            return b"X%02x" % (event.killed_by & 0xFF)
        out = b"T%02x" % event.signal
        if event.watch_kind is not None:
            out += WATCH_NAMES[event.watch_kind].encode() + b":%x;" % event.watch_addr
        if event.thread is not None:
            out += b"thread:%x;" % event.thread
        return out

    # -- dispatch --------------------------------------------------------------------------
    def dispatch(self, p: bytes) -> bytes | None:
        if not p:
            return b""
        c = p[:1]
        if c == b"?":
            return self._stop_reply(self.last_stop)
        if c == b"q" or c == b"Q":
            return self._query(p)
        if c == b"g":
            return pk.hex_bytes(self.target.read_registers(self._thread(self.g_thread)))
        if c == b"G":
            self.target.write_registers(self._thread(self.g_thread), bytes.fromhex(p[1:].decode()))
            return b"OK"
        if c == b"p":
            return pk.hex_bytes(self.target.read_register(self._thread(self.g_thread),
                                                          pk.parse_hex(p[1:])))
        if c == b"P":
            reg, _, value = p[1:].partition(b"=")
            self.target.write_register(self._thread(self.g_thread), pk.parse_hex(reg),
                                       bytes.fromhex(value.decode()))
            return b"OK"
        if c == b"m":
            addr, _, length = p[1:].partition(b",")
            n = min(pk.parse_hex(length), MAX_MEMORY_READ)
            return pk.hex_bytes(self.target.read_memory(self._thread(self.g_thread),
                                                        pk.parse_hex(addr), n))
        if c in (b"M", b"X"):
            head, _, data = p[1:].partition(b":")
            addr, _, length = head.partition(b",")
            raw = bytes.fromhex(data.decode()) if c == b"M" else pk.unescape(data)
            if len(raw) != pk.parse_hex(length):
                raise ValueError("length does not match the data")
            if raw:
                self.target.write_memory(self._thread(self.g_thread), pk.parse_hex(addr), raw)
            return b"OK"
        if c == b"H":
            tid = self._parse_thread(p[2:])
            if tid not in (None, -1) and not self.target.thread_alive(tid):
                return b"E22"
            if p[1:2] == b"g":
                self.g_thread = None if tid in (None, -1) else tid
            else:
                self.c_thread = None if tid in (None, -1) else tid
            return b"OK"
        if c == b"T":
            return b"OK" if self.target.thread_alive(self._parse_thread(p[1:]) or 0) else b"E22"
        if c in (b"c", b"C"):
            return self._resume(None, p)
        if c in (b"s", b"S"):
            return self._resume(self._thread(self.c_thread), p)
        if c == b"v":
            return self._v_packet(p)
        if c in (b"Z", b"z"):
            kind_s, addr_s, length_s = p[1:].split(b",")[:3]
            kind, addr = int(kind_s), pk.parse_hex(addr_s)
            length = pk.parse_hex(length_s.split(b";")[0])
            ok = (self.target.insert_point if c == b"Z" else self.target.remove_point)(
                kind, addr, length)
            return b"OK" if ok else b""
        if c == b"D":
            self.target.detach()
            self._send_packet(b"OK")
            self.close()
            return None
        if c == b"k":
            self.close()
            self.target.kill()
            return None
        if c == b"!":
            self.extended = True
            return b"OK"
        return b""

    def _thread(self, tid: int | None) -> int:
        if tid is not None and self.target.thread_alive(tid):
            return tid
        if self.last_stop.thread is not None and self.target.thread_alive(self.last_stop.thread):
            return self.last_stop.thread
        threads = self.target.threads()
        if not threads:
            raise TargetError("no threads", 3)
        return threads[0]

    @staticmethod
    def _parse_thread(text: bytes) -> int | None:
        """``-1`` all, ``0`` any (None), ``p<pid>.<tid>`` or a plain hex id."""
        if text.startswith(b"p"):
            text = text.split(b".", 1)[1] if b"." in text else b"-1"
        if text == b"-1":
            return -1
        tid = pk.parse_hex(text)
        return None if tid == 0 else tid

    def _resume(self, step_thread: int | None, p: bytes) -> None:
        # An address argument ("c ADDR") means: continue from there.
        arg = p[1:]
        if p[:1] in (b"C", b"S"):
            arg = arg.partition(b";")[2]
        if arg:
            pc = pk.parse_hex(arg)
            tid = self._thread(step_thread or self.c_thread)
            self.target.write_register(tid, self.target.pc_regnum, pc.to_bytes(
                self.target.pc_size, "little"))
        self.running = True
        self.target.resume(step_thread)
        return None

    def _v_packet(self, p: bytes) -> bytes | None:
        if p == b"vCont?":
            return b"vCont;c;C;s;S"
        if p.startswith(b"vCont;"):
            return self._v_cont(p[6:])
        if p.startswith(b"vKill"):
            self._send_packet(b"OK")
            self.close()
            self.target.kill()
            return None
        if p == b"vMustReplyEmpty":
            return b""
        return b""

    def _v_cont(self, actions: bytes) -> None:
        """``vCont;ACTION[:THREAD];...``: each thread takes the leftmost action that
        names it (or names no thread); a thread no action covers stays stopped.
        In all-stop mode a step is one instruction of that thread alone (the others
        running zero instructions meanwhile is one of the runs the protocol allows)."""
        threads = self.target.threads()
        chosen: dict[int, bytes] = {}
        for action in actions.split(b";"):
            verb, _, who = action.partition(b":")
            kind = verb[:1].lower()
            if kind not in (b"c", b"s"):
                raise ValueError(f"vCont action {verb!r} is not supported")
            tid = self._parse_thread(who) if who else -1
            if tid is None:  # thread 0: "any thread" -> the current one
                tid = self._thread(self.c_thread)
            for t in (threads if tid == -1 else [tid]):
                if t in threads:
                    chosen.setdefault(t, kind)
        stepping = [t for t in threads if chosen.get(t) == b"s"]
        running = frozenset(t for t in threads if chosen.get(t) == b"c")
        if not stepping and not running:
            raise ValueError("vCont resumes no thread")
        self.running = True
        if stepping:  # several (``vCont;s``): the current thread's step, if it is one
            current = self._thread(self.c_thread)
            self.target.resume(current if current in stepping else stepping[0])
        elif len(running) == len(threads):
            self.target.resume(None)
        else:
            self.target.resume_threads(running)
        return None

    def _query(self, p: bytes) -> bytes:
        if p.startswith(b"qSupported"):
            return (b"PacketSize=%x;qXfer:features:read+;QStartNoAckMode+;vContSupported+;"
                    b"qXfer:threads:read-" % pk.MAX_PACKET)
        if p == b"QStartNoAckMode":
            self._send_packet(b"OK")
            self.no_ack = True
            return None  # type: ignore[return-value]
        if p.startswith(b"qXfer:features:read:"):
            annex, _, span = p[len(b"qXfer:features:read:"):].partition(b":")
            files = self.target.target_xml()
            text = files.get(annex.decode("ascii", "replace"))
            if text is None:
                return b"E00"
            off_s, _, len_s = span.partition(b",")
            off, length = pk.parse_hex(off_s), pk.parse_hex(len_s)
            data = text.encode()
            chunk = data[off:off + min(length, pk.MAX_PACKET - 8)]
            return (b"l" if off + len(chunk) >= len(data) else b"m") + chunk
        if p == b"qAttached":
            return b"1"
        if p == b"qC":
            return b"QC%x" % self._thread(self.c_thread)
        if p == b"qfThreadInfo":
            return b"m" + b",".join(b"%x" % t for t in self.target.threads())
        if p == b"qsThreadInfo":
            return b"l"
        if p.startswith(b"qThreadExtraInfo,"):
            tid = pk.parse_hex(p.split(b",", 1)[1])
            return pk.hex_bytes(self.target.thread_description(tid).encode())
        if p == b"qSymbol::":
            return b"OK"
        if p == b"qOffsets":
            return b""
        return b""

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.target.on_stop = None
        if self._on_close is not None:
            self._on_close()
