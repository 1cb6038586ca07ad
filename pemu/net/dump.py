"""``-object filter-dump,id=ID,netdev=NETDEV,file=PATH[,maxlen=BYTES]``: every frame
that crosses the netdev's link, both directions, appended to a pcap file (the classic
libpcap format, LINKTYPE_ETHERNET) that tcpdump and Wireshark read.  A frame longer
than ``maxlen`` (default 65536, QEMU's) is cut to it; the record keeps its true length.

Frames come from several threads (the vCPU's transmit, the backend's receive): each
record is written whole under a lock, with one write, so records never interleave.
"""

from __future__ import annotations

import struct
import threading
import time

from pemu.qemuopts.keyval import OptionError

PCAP_MAGIC = 0xA1B2C3D4  # microsecond timestamps
LINKTYPE_ETHERNET = 1
DEFAULT_MAXLEN = 65536
GLOBAL_HEADER = struct.Struct("<IHHiIII")
RECORD_HEADER = struct.Struct("<IIII")
FILTER_TYPES_NOT_BUILT = ("filter-buffer", "filter-mirror", "filter-redirector",
                          "filter-rewriter", "colo-compare", "filter-replay")


class PcapWriter:
    def __init__(self, path: str, maxlen: int = DEFAULT_MAXLEN) -> None:
        self.maxlen = maxlen
        self.lock = threading.Lock()
        self.file = open(path, "wb", buffering=0)  # noqa: SIM115 - closed with the netdev
        self.file.write(GLOBAL_HEADER.pack(PCAP_MAGIC, 2, 4, 0, 0, maxlen, LINKTYPE_ETHERNET))

    def __call__(self, frame: bytes) -> None:
        now = time.time()
        data = frame[:self.maxlen]
        record = RECORD_HEADER.pack(int(now), int(now % 1 * 1e6), len(data), len(frame)) + data
        with self.lock:
            if not self.file.closed:
                self.file.write(record)

    def close(self) -> None:
        with self.lock:
            self.file.close()


def attach_filters(network, objects: list[dict[str, str]], prog: str) -> None:
    """The ``-object filter-*`` options: filter-dump attached to its netdev; the other
    filter types are refused (named, never ignored)."""
    for opts in objects:
        kind = opts.get("qom-type", "")
        what = f"{prog}: -object {kind},id={opts.get('id', '')}"
        if kind in FILTER_TYPES_NOT_BUILT:
            raise OptionError(f"{what}: the {kind} object is not implemented in pemu yet")
        if kind != "filter-dump":
            continue
        for key in opts:
            if key not in ("qom-type", "id", "netdev", "file", "maxlen", "queue", "status"):
                raise OptionError(f"{what}: Invalid parameter '{key}'")
        if opts.get("queue", "all") != "all" or opts.get("status", "on") != "on":
            raise OptionError(f"{what}: only queue=all and status=on are implemented")
        netdev = network.netdevs.get(opts.get("netdev", ""))
        if netdev is None:
            raise OptionError(f"{what}: netdev '{opts.get('netdev', '')}' not found")
        if not opts.get("file"):
            raise OptionError(f"{what}: Parameter 'file' is missing")
        maxlen = opts.get("maxlen", str(DEFAULT_MAXLEN))
        if not maxlen.isdigit() or int(maxlen) == 0:
            raise OptionError(f"{what}: Parameter 'maxlen' expects a positive number")
        try:
            writer = PcapWriter(opts["file"], int(maxlen))
        except OSError as e:
            raise OptionError(f"{what}: cannot open {opts['file']}: {e.strerror}") from None
        netdev.filters.append(writer)
        network.closers.append(writer)
