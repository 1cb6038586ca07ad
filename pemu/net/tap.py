"""``-netdev tap``: the guest's frames on a TAP interface of the host (Linux TUN/TAP).

``ifname=NAME`` attaches to (or creates) that interface through /dev/net/tun;
``fd=N`` takes one a manager (libvirt, a test) already opened; ``queues=N`` opens a
multi-queue interface N times: what the kernel queues on descriptor i goes to the NIC
as queue i, and the NIC's queue i writes to descriptor i (virtio-net ``mq=on``).
pemu runs no scripts: ``script=`` and ``downscript=`` may only be ``no`` (address the
interface yourself, or let a manager do it).

``vnet_hdr=on`` asks the kernel for a ``virtio_net_hdr`` before each frame
(IFF_VNET_HDR).  With a virtio NIC on the link, the header goes through unchanged both
ways (``NetClient.use_vnet_hdr``): the guest's unchecksummed and TSO/UFO frames reach
the kernel, which finishes them, and the kernel hands the guest what its driver takes
(``set_offload``, TUNSETOFFLOAD).  With another peer (a hub) the backend writes an
all-zero header (nothing requested) and drops the header of what it reads; no
offloads are switched on then, so the kernel sends whole, checksummed frames.
"""

from __future__ import annotations

import errno
import fcntl
import os
import select
import struct

from pemu.fdpass.handover import TAP, take
from pemu.net.backend import NetdevOptions, declare_netdev
from pemu.net.polling import PollingBackend
from pemu.net.stream import MAX_FRAME
from pemu.qom.registry import Property

TUN_PATH = "/dev/net/tun"
TUNSETIFF = 0x400454CA
TUNGETIFF = 0x800454D2
TUNSETVNETHDRSZ = 0x400454D8
TUNSETOFFLOAD = 0x400454D0
TUN_F_CSUM, TUN_F_TSO4, TUN_F_TSO6, TUN_F_TSO_ECN, TUN_F_UFO = 0x01, 0x02, 0x04, 0x08, 0x10
IFF_TAP = 0x0002
IFF_NO_PI = 0x1000
IFF_MULTI_QUEUE = 0x0100
IFF_VNET_HDR = 0x4000
IFREQ = struct.Struct("16sH22x")  # struct ifreq: the name, then ifr_flags
VNET_HDR_SIZE = 12  # virtio 1.0's header, num_buffers included (TUNSETVNETHDRSZ)
MAX_QUEUES = 16
READ_BURST = 64


class TapError(OSError):
    """The interface cannot be had; the message says why in words."""


def open_tap(ifname: str, vnet_hdr: bool, multi_queue: bool) -> tuple[int, str]:
    """One queue of TAP interface ``ifname`` (a pattern such as ``tap%d`` lets the
    kernel choose); returns the descriptor and the interface's name."""
    try:
        fd = os.open(TUN_PATH, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise TapError(f"could not open {TUN_PATH}: no such device node (is the tun "
                       "module loaded? in a container, pass the device in)") from None
    except PermissionError:
        raise TapError(f"could not open {TUN_PATH}: permission denied") from None
    flags = IFF_TAP | IFF_NO_PI | (IFF_VNET_HDR if vnet_hdr else 0) \
        | (IFF_MULTI_QUEUE if multi_queue else 0)
    try:
        answer = fcntl.ioctl(fd, TUNSETIFF, IFREQ.pack(ifname.encode(), flags))
    except OSError as e:
        os.close(fd)
        raise TapError(_why(e, ifname)) from None
    name = IFREQ.unpack(answer)[0].rstrip(b"\0").decode()
    if vnet_hdr:
        fcntl.ioctl(fd, TUNSETVNETHDRSZ, struct.pack("i", VNET_HDR_SIZE))
    return fd, name


def _why(e: OSError, ifname: str) -> str:
    if e.errno == errno.EBUSY:
        return (f"could not configure {TUN_PATH} ({ifname}): Device or resource busy "
                "(the interface is in use by another process, or exists with other "
                "flags: a multi-queue interface needs queues= on every user)")
    if e.errno == errno.EPERM:
        return (f"could not configure {TUN_PATH} ({ifname}): Operation not permitted "
                "(creating a TAP interface needs CAP_NET_ADMIN; or create it first "
                "with 'ip tuntap add dev NAME mode tap user YOU')")
    if e.errno == errno.EINVAL:
        return f"could not configure {TUN_PATH} ({ifname}): invalid interface name or flags"
    return f"could not configure {TUN_PATH} ({ifname}): {e.strerror}"


def tap_of_fd(fd: int) -> tuple[str, bool]:
    """The name and IFF_VNET_HDR of a TAP descriptor handed in (``fd=``)."""
    try:
        answer = fcntl.ioctl(fd, TUNGETIFF, bytes(IFREQ.size))
    except OSError as e:
        raise TapError(f"fd={fd} is not a TAP device ({e.strerror})") from None
    name, flags = IFREQ.unpack(answer)
    if not flags & IFF_TAP:
        raise TapError(f"fd={fd} is a TUN (IP) device, not TAP (Ethernet)")
    os.set_blocking(fd, False)
    return name.rstrip(b"\0").decode(), bool(flags & IFF_VNET_HDR)


class TapBackend(PollingBackend):
    kind = "tap"

    def __init__(self, name: str, fds: list[int], ifname: str, vnet_hdr: bool) -> None:
        super().__init__(name)
        self.fds = fds
        self.ifname = ifname
        self.vnet_hdr = vnet_hdr
        self.header = bytes(VNET_HDR_SIZE) if vnet_hdr else b""
        self.ufo = vnet_hdr and self._offload_accepted(TUN_F_CSUM | TUN_F_UFO)
        self._offload_accepted(0)
        self.start()

    def has_vnet_hdr(self) -> bool:
        return self.vnet_hdr

    def has_ufo(self) -> bool:
        return self.ufo

    def _offload_accepted(self, flags: int) -> bool:
        try:
            for fd in self.fds:
                fcntl.ioctl(fd, TUNSETOFFLOAD, flags)
        except OSError:
            return False  # this kernel does not know one of the flags (UFO)
        return True

    def set_offload(self, csum: bool, tso4: bool, tso6: bool, ecn: bool, ufo: bool) -> None:
        flags = 0
        if csum:  # every segmentation offload needs checksum offload
            flags = TUN_F_CSUM | (TUN_F_TSO4 if tso4 else 0) | (TUN_F_TSO6 if tso6 else 0) \
                | (TUN_F_TSO_ECN if ecn and (tso4 or tso6) else 0) \
                | (TUN_F_UFO if ufo and self.ufo else 0)
        self._offload_accepted(flags)

    def wanted(self) -> dict[int, int]:
        events = 0 if self.peer_backlogged() else select.POLLIN
        return {fd: events for fd in self.fds}

    def timeout_ms(self) -> int:
        return 20 if self.peer_backlogged() else super().timeout_ms()

    def ready(self, fd: int, revents: int) -> None:
        skip = len(self.header) - self.vnet_hdr_len  # a header the peer takes stays
        for _ in range(READ_BURST):
            try:
                data = os.read(fd, skip + MAX_FRAME)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return  # the interface went away: nothing more to read
            if len(data) >= len(self.header) + 14:
                self.send(data[skip:], self.fds.index(fd))
            if self.peer_backlogged():
                return

    def queue_count(self) -> int:
        return len(self.fds)

    def receive(self, frame: bytes) -> bool:
        return self.queue_tx((frame, 0))

    def receive_queue(self, frame: bytes, queue: int) -> bool:
        return self.queue_tx((frame, queue))

    def transmit(self) -> None:
        header = b"" if self.vnet_hdr_len else self.header  # the peer's, or ours
        while self.tx:
            frame, queue = self.tx.popleft()
            try:
                os.write(self.fds[queue % len(self.fds)], header + frame)
            except OSError:
                self.dropped += 1  # queue full or interface down: the wire drops it

    def describe(self) -> str:
        return f"ifname={self.ifname},script=no,downscript=no"

    def release(self) -> None:
        for fd in self.fds:
            os.close(fd)
        self.fds = []


def _no_script(opts: NetdevOptions, key: str) -> None:
    value = opts.text(key)
    if value not in (None, "", "no"):
        raise opts.error(f"{key}={value}: pemu runs no interface scripts; use {key}=no "
                         "and configure the interface beforehand")


def _open(opts: NetdevOptions) -> TapBackend:
    _no_script(opts, "script")
    _no_script(opts, "downscript")
    queues_text = opts.text("queues") or "1"
    if not queues_text.isdigit() or not 1 <= int(queues_text) <= MAX_QUEUES:
        raise opts.error(f"queues={queues_text}: expected 1 to {MAX_QUEUES}")
    queues = int(queues_text)
    vnet_given = opts.text("vnet_hdr")
    fd_text = opts.text("fd")
    try:
        if fd_text is not None:
            if opts.text("ifname") is not None or queues != 1:
                raise opts.error("fd= cannot go with ifname= or queues=")
            if not fd_text.isdigit():
                raise opts.error(f"fd={fd_text}: expected a descriptor number")
            fd = int(fd_text)
            ifname, has_vnet = tap_of_fd(fd)
            if vnet_given is not None and opts.flag("vnet_hdr") != has_vnet:
                raise opts.error(f"vnet_hdr={vnet_given} does not match the descriptor, "
                                 f"opened {'with' if has_vnet else 'without'} IFF_VNET_HDR")
            if has_vnet:
                fcntl.ioctl(fd, TUNSETVNETHDRSZ, struct.pack("i", VNET_HDR_SIZE))
            return TapBackend(opts.id, [fd], ifname, has_vnet)
        handed = take(TAP, opts.id)  # a live update: the old pemu's queues, still up
        if handed is not None:
            ifname, has_vnet = tap_of_fd(handed[0])
            return TapBackend(opts.id, handed, ifname, has_vnet)
        vnet = opts.flag("vnet_hdr") if vnet_given is not None else False
        fds: list[int] = []
        ifname = opts.text("ifname") or "tap%d"
        try:
            for _ in range(queues):
                fd, ifname = open_tap(ifname, vnet, queues > 1)
                fds.append(fd)
        except OSError:
            for fd in fds:
                os.close(fd)
            raise
        return TapBackend(opts.id, fds, ifname, vnet)
    except OSError as e:
        raise opts.error(str(e)) from None


declare_netdev(
    "tap", "a host TAP interface through /dev/net/tun", _open,
    Property("ifname", "str", None, "the interface (default: the kernel picks tapN)"),
    Property("fd", "str", None, "an open TAP descriptor handed in by a manager"),
    Property("script", "str", "no", "only 'no': pemu runs no interface scripts"),
    Property("downscript", "str", "no", "only 'no'"),
    Property("vnet_hdr", "bool", None, "IFF_VNET_HDR: a virtio_net_hdr before each frame",
             ("on", "off")),
    Property("queues", "str", "1", "open a multi-queue interface this many times"),
    refused={
        "helper": "is not implemented in pemu (no qemu-bridge-helper)",
        "fds": "is not implemented in pemu yet (use fd= with queues=1)",
        "vhost": "is not implemented in pemu (no vhost-net)",
        "vhostfd": "is not implemented in pemu (no vhost-net)",
        "vhostforce": "is not implemented in pemu (no vhost-net)",
        "sndbuf": "is not implemented in pemu yet",
        "br": "is not implemented in pemu (no qemu-bridge-helper)",
    })
