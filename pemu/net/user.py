"""``-netdev user``: user-mode NAT through libslirp, as QEMU's own ``user`` backend.

The guest sees a 10.0.2.0/24 network (by default) with a gateway at .2 that stands for
the host (its 127.0.0.1 included, unless ``restrict=on``), a DNS forwarder at .3 and a
DHCP server that leases from .15.  ``hostfwd`` rules forward host ports into the guest.

libslirp is not thread-safe, so each instance lives on a thread of its own
(``pemu-slirp-ID``) that runs its poll loop: slirp's sockets, its timers, a wake-up
pipe, and the frames the guest sent, which the vCPU thread only queues (``receive``
never blocks).  Frames slirp sends to the guest go through the link to the NIC from
that thread.  The monitor's ``hostfwd_add``/``hostfwd_remove`` run there too.
"""

from __future__ import annotations

import ctypes
import ipaddress
import select
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from pemu import threads
from pemu.net import slirp_ffi as ffi
from pemu.net.backend import REPEATABLE, NetdevOptions, declare_netdev
from pemu.net.client import MAX_QUEUED, NetClient
from pemu.net.wakeup import Wakeup
from pemu.qemuopts.keyval import OptionError
from pemu.qom.registry import Property

_POLL_TO_SYS = ((ffi.SLIRP_POLL_IN, select.POLLIN), (ffi.SLIRP_POLL_OUT, select.POLLOUT),
                (ffi.SLIRP_POLL_PRI, select.POLLPRI), (ffi.SLIRP_POLL_ERR, select.POLLERR),
                (ffi.SLIRP_POLL_HUP, select.POLLHUP))
IDLE_POLL_MS = 1000  # longest wait when slirp has nothing timed to do


class HostfwdError(ValueError):
    """A hostfwd rule that does not parse or cannot be set up; the message is QEMU's."""


@dataclass(frozen=True)
class Hostfwd:
    udp: bool
    host_addr: str
    host_port: int
    guest_addr: str
    guest_port: int

    def describe(self) -> str:
        return (f"{'udp' if self.udp else 'tcp'}:{self.host_addr}:{self.host_port}-"
                f"{self.guest_addr}:{self.guest_port}")


def _addr(text: str, default: str, why: str, rule: str) -> str:
    if not text:
        return default
    try:
        return str(ipaddress.IPv4Address(text))
    except ValueError:
        raise HostfwdError(f"Invalid host forwarding rule '{rule}' ({why})") from None


def _port(text: str, why: str, rule: str) -> int:
    if not text.isdigit() or not 0 <= int(text) <= 65535:
        raise HostfwdError(f"Invalid host forwarding rule '{rule}' ({why})")
    return int(text)


def parse_hostfwd(rule: str, default_guest: str) -> Hostfwd:
    """``[tcp|udp]:[hostaddr]:hostport-[guestaddr]:guestport``, QEMU's syntax and
    messages; an empty guest address is the first DHCP address."""
    def bad(why: str) -> HostfwdError:
        return HostfwdError(f"Invalid host forwarding rule '{rule}' ({why})")

    proto, sep, rest = rule.partition(":")
    if not sep:
        raise bad("Missing : separator")
    if proto not in ("", "tcp", "udp"):
        raise bad("Bad protocol name")
    host_addr, sep, rest = rest.partition(":")
    if not sep:
        raise bad("Missing : separator")
    host_addr = _addr(host_addr, "0.0.0.0", "Bad host address", rule)
    host_port, sep, rest = rest.partition("-")
    if not sep:
        raise bad("Missing - separator")
    port = _port(host_port, "Bad host port", rule)
    guest_addr, sep, guest_port = rest.partition(":")
    if not sep:
        raise bad("Missing : separator")
    guest = _addr(guest_addr, default_guest, "Bad guest address", rule)
    return Hostfwd(proto == "udp", host_addr, port, guest, _port(guest_port, "Bad guest port",
                                                                  rule))


@dataclass(frozen=True)
class Guestfwd:
    """``guestfwd=[tcp]:server:port-cmd:COMMAND``: a guest connection to server:port
    runs COMMAND with the connection as its stdin/stdout.  ``...-DEV`` (QEMU 7.2's
    other form, DEV a chardev spec such as ``tcp:127.0.0.1:4321`` or ``unix:PATH``):
    the chardev is opened once, at start, and the guest's connections to server:port
    are joined to it."""

    server: str
    port: int
    command: str | None
    chardev: str | None = None


def parse_guestfwd(rule: str) -> Guestfwd:
    def bad(why: str) -> HostfwdError:
        return HostfwdError(f"Invalid guest forwarding rule '{rule}' ({why})")

    target, sep, dest = rule.partition("-")
    if not sep:
        raise bad("Missing - separator")
    parts = target.split(":")
    if len(parts) == 3:
        if parts[0] not in ("", "tcp"):
            raise bad("Only TCP is supported")
        parts = parts[1:]
    if len(parts) != 2:
        raise bad("expected [tcp]:server:port")
    server, port = parts
    try:
        server = str(ipaddress.IPv4Address(server))
    except ValueError:
        raise bad("Bad server address") from None
    if not port.isdigit() or not 0 < int(port) <= 65535:
        raise bad("Bad port")
    if dest.startswith("cmd:"):
        return Guestfwd(server, int(port), dest[4:])
    if not dest:
        raise bad("Missing the device after -")
    return Guestfwd(server, int(port), None, dest)


@dataclass
class UserConfig:
    """The ``-netdev user`` options, resolved to addresses (QEMU's defaults)."""

    net: ipaddress.IPv4Network = ipaddress.IPv4Network("10.0.2.0/24")
    host: str = "10.0.2.2"
    dhcpstart: str = "10.0.2.15"
    dns: str = "10.0.2.3"
    ipv4: bool = True
    ipv6: bool = True
    ipv6_net: ipaddress.IPv6Network = ipaddress.IPv6Network("fec0::/64")
    restrict: bool = False
    hostname: str | None = None
    domainname: str | None = None
    dnssearch: list[str] = field(default_factory=list)
    tftp: str | None = None
    tftp_server_name: str | None = None
    bootfile: str | None = None
    hostfwd: list[Hostfwd] = field(default_factory=list)
    guestfwd: list[Guestfwd] = field(default_factory=list)


def _in_net(opts: NetdevOptions, key: str, net: ipaddress.IPv4Network, default: int) -> str:
    text = opts.text(key)
    if text is None:
        return str(net.network_address + default)
    try:
        addr = ipaddress.IPv4Address(text)
    except ValueError:
        raise opts.error(f"Parameter '{key}' expects an IPv4 address") from None
    if addr not in net:
        raise opts.error(f"{key}={text} is not in the network {net}")
    return str(addr)


def user_config(opts: NetdevOptions) -> UserConfig:
    """Check and resolve the options (QEMU's defaults derive from ``net=``)."""
    cfg = UserConfig()
    net_text = opts.text("net")
    if net_text is not None:
        try:
            cfg.net = ipaddress.IPv4Network(net_text if "/" in net_text else f"{net_text}/24",
                                            strict=False)
        except ValueError:
            raise opts.error(f"Parameter 'net' expects an address with an optional mask "
                             f"(got '{net_text}')") from None
    cfg.host = _in_net(opts, "host", cfg.net, 2)
    cfg.dhcpstart = _in_net(opts, "dhcpstart", cfg.net, 15)
    cfg.dns = _in_net(opts, "dns", cfg.net, 3)
    cfg.ipv4 = opts.flag("ipv4") if opts.text("ipv4") is not None else True
    cfg.ipv6 = opts.flag("ipv6") if opts.text("ipv6") is not None else True
    if not (cfg.ipv4 or cfg.ipv6):
        raise opts.error("IPv4 and IPv6 cannot both be disabled")
    v6 = opts.text("ipv6-net")
    if v6 is not None:
        try:
            cfg.ipv6_net = ipaddress.IPv6Network(v6, strict=False)
        except ValueError:
            raise opts.error(f"Parameter 'ipv6-net' expects an IPv6 prefix (got '{v6}')") \
                from None
        if cfg.ipv6_net.prefixlen > 126:
            raise opts.error("ipv6-net prefix is too long")
    cfg.restrict = opts.flag("restrict")
    cfg.hostname = opts.text("hostname")
    cfg.domainname = opts.text("domainname")
    cfg.dnssearch = opts.texts("dnssearch")
    cfg.tftp = opts.text("tftp")
    cfg.tftp_server_name = opts.text("tftp-server-name")
    cfg.bootfile = opts.text("bootfile")
    try:
        cfg.hostfwd = [parse_hostfwd(rule, cfg.dhcpstart) for rule in opts.texts("hostfwd")]
        cfg.guestfwd = [parse_guestfwd(rule) for rule in opts.texts("guestfwd")]
    except HostfwdError as e:
        raise opts.error(str(e)) from None
    for fwd in cfg.guestfwd:
        if ipaddress.IPv4Address(fwd.server) not in cfg.net:
            raise opts.error(f"guestfwd server {fwd.server} is not in the network {cfg.net}")
    return cfg


class _Timer:
    def __init__(self, cb: Callable, cb_opaque: int | None) -> None:
        self.cb = cb
        self.cb_opaque = cb_opaque
        self.deadline_ms: int | None = None


class SlirpBackend(NetClient):
    """One libslirp instance on its own thread; ``receive`` takes the guest's frames."""

    kind = "user"

    def __init__(self, name: str, cfg: UserConfig,
                 guestfwd_chardevs: dict[tuple[str, int], object] | None = None) -> None:
        super().__init__(name)
        self.checksums_valid = True  # slirp computes every checksum of what it sends
        self.cfg = cfg
        # (server, port) -> the chardev a guestfwd=...-DEV rule joins the guest to
        self.guestfwd_chardevs = guestfwd_chardevs or {}
        self.lib = ffi.library()
        self._to_slirp: deque[bytes] = deque()
        self._calls: deque[Callable[[], None]] = deque()
        self._stopping = False
        self.wakeup = Wakeup()
        self._timers: dict[int, _Timer] = {}
        self._next_timer = 1
        self._poll_fds: list[tuple[int, int]] = []
        self._revents: dict[int, int] = {}
        self.rules: list[Hostfwd] = []
        self._keep: list[object] = []  # C data slirp points at: must outlive it
        self._callbacks = self._make_callbacks()
        self._add_poll = ffi.ADD_POLL(self._on_add_poll)
        self._get_revents = ffi.GET_REVENTS(self._on_get_revents)
        config = self._make_config()
        self.slirp = self.lib.slirp_new(ctypes.byref(config), ctypes.byref(self._callbacks),
                                        None)
        if not self.slirp:
            raise OSError("libslirp refused the configuration")
        self._keep.append(config)
        try:
            for rule in cfg.hostfwd:
                self._add_hostfwd_now(rule)
            for fwd in cfg.guestfwd:
                self._add_guestfwd_now(fwd)
        except HostfwdError:
            self.lib.slirp_cleanup(self.slirp)
            self.slirp = None
            raise
        self._thread = threads.start_daemon(self._run, name=f"pemu-slirp-{name}")

    # -- configuration --------------------------------------------------------------
    def _cstr(self, text: str | None) -> bytes | None:
        if text is None:
            return None
        data = text.encode()
        self._keep.append(data)
        return data

    def _make_config(self) -> ffi.SlirpConfig:
        c = self.cfg
        cfg = ffi.SlirpConfig()
        cfg.version = ffi.CONFIG_VERSION
        cfg.restricted = int(c.restrict)
        cfg.in_enabled = c.ipv4
        cfg.vnetwork = ffi.InAddr.of(str(c.net.network_address))
        cfg.vnetmask = ffi.InAddr.of(str(c.net.netmask))
        cfg.vhost = ffi.InAddr.of(c.host)
        cfg.in6_enabled = c.ipv6
        cfg.vprefix_addr6 = ffi.In6Addr.of(str(c.ipv6_net.network_address))
        cfg.vprefix_len = c.ipv6_net.prefixlen
        cfg.vhost6 = ffi.In6Addr.of(str(c.ipv6_net.network_address + 2))
        cfg.vnameserver6 = ffi.In6Addr.of(str(c.ipv6_net.network_address + 3))
        cfg.vhostname = self._cstr(c.hostname)
        cfg.tftp_server_name = self._cstr(c.tftp_server_name)
        cfg.tftp_path = self._cstr(c.tftp)
        cfg.bootfile = self._cstr(c.bootfile)
        cfg.vdhcp_start = ffi.InAddr.of(c.dhcpstart)
        cfg.vnameserver = ffi.InAddr.of(c.dns)
        if c.dnssearch:
            names = (ctypes.c_char_p * (len(c.dnssearch) + 1))(
                *[self._cstr(n) for n in c.dnssearch], None)
            self._keep.append(names)
            cfg.vdnssearch = ctypes.cast(names, ctypes.POINTER(ctypes.c_char_p))
        cfg.vdomainname = self._cstr(c.domainname)
        cfg.if_mtu = 0  # 0: libslirp's defaults (1500)
        cfg.if_mru = 0
        return cfg

    def _make_callbacks(self) -> ffi.SlirpCb:
        cb = ffi.SlirpCb()
        cb.send_packet = ffi.SEND_PACKET(self._on_send_packet)
        cb.guest_error = ffi.GUEST_ERROR(self._on_guest_error)
        cb.clock_get_ns = ffi.CLOCK_GET_NS(lambda opaque: time.monotonic_ns())
        cb.timer_new = ffi.TIMER_NEW(self._on_timer_new)
        cb.timer_free = ffi.TIMER_FREE(self._on_timer_free)
        cb.timer_mod = ffi.TIMER_MOD(self._on_timer_mod)
        cb.register_poll_fd = ffi.REGISTER_POLL_FD(lambda fd, opaque: None)
        cb.unregister_poll_fd = ffi.REGISTER_POLL_FD(lambda fd, opaque: None)
        cb.notify = ffi.NOTIFY(lambda opaque: self._wake())
        return cb

    # -- callbacks from libslirp (its thread) -----------------------------------------
    def _on_send_packet(self, buf: int, length: int, opaque: int) -> int:
        self.send(ctypes.string_at(buf, length))
        return length

    def _on_guest_error(self, msg: bytes, opaque: int) -> None:
        print(f"pemu: -netdev user,id={self.name}: guest error: {msg.decode(errors='replace')}",
              file=sys.stderr)

    def _on_timer_new(self, cb: Callable, cb_opaque: int | None, opaque: int) -> int:
        tid = self._next_timer
        self._next_timer += 1
        self._timers[tid] = _Timer(cb, cb_opaque)
        return tid

    def _on_timer_free(self, timer: int, opaque: int) -> None:
        self._timers.pop(timer, None)

    def _on_timer_mod(self, timer: int, expire_ms: int, opaque: int) -> None:
        t = self._timers.get(timer)
        if t is not None:
            t.deadline_ms = expire_ms

    def _on_add_poll(self, fd: int, events: int, opaque: int) -> int:
        mask = 0
        for slirp_bit, sys_bit in _POLL_TO_SYS:
            if events & slirp_bit:
                mask |= sys_bit
        self._poll_fds.append((fd, mask))
        return len(self._poll_fds) - 1

    def _on_get_revents(self, idx: int, opaque: int) -> int:
        if not 0 <= idx < len(self._poll_fds):
            return 0
        got = self._revents.get(self._poll_fds[idx][0], 0)
        out = 0
        for slirp_bit, sys_bit in _POLL_TO_SYS:
            if got & sys_bit:
                out |= slirp_bit
        return out

    # -- the guest's frames (vCPU thread) ----------------------------------------------
    def receive(self, frame: bytes) -> bool:
        if len(self._to_slirp) < MAX_QUEUED:
            self._to_slirp.append(frame)
            self._wake()
        else:
            self.drop("slirp is not keeping up with the guest (queue full)")
        return True

    def _wake(self) -> None:
        self.wakeup.wake()  # no system call while the slirp thread is running anyway

    # -- the slirp thread -------------------------------------------------------------
    def _timeout_ms(self) -> int:
        now = time.monotonic_ns() // 1_000_000
        timeout = IDLE_POLL_MS
        for t in self._timers.values():
            if t.deadline_ms is not None:
                timeout = min(timeout, max(0, t.deadline_ms - now))
        return timeout

    def _fire_timers(self) -> None:
        now = time.monotonic_ns() // 1_000_000
        for t in list(self._timers.values()):
            if t.deadline_ms is not None and t.deadline_ms <= now:
                t.deadline_ms = None
                t.cb(t.cb_opaque)

    def _run(self) -> None:
        try:
            while not self._stopping:
                self._iterate()
        except Exception:  # noqa: BLE001 - the guest keeps running without a network
            import traceback

            print(f"pemu: -netdev user,id={self.name}: the slirp thread failed:",
                  file=sys.stderr)
            traceback.print_exc()

    def _iterate(self) -> None:
        while self._to_slirp:
            frame = self._to_slirp.popleft()
            self.lib.slirp_input(self.slirp, frame, len(frame))
        while self._calls:
            self._calls.popleft()()
        self.wakeup.going_to_sleep()  # before the queues are looked at for the timeout
        self._poll_fds = []
        timeout = ctypes.c_uint32(self._timeout_ms())
        self.lib.slirp_pollfds_fill(self.slirp, ctypes.byref(timeout), self._add_poll, None)
        poller = select.poll()
        for fd, mask in self._poll_fds:
            poller.register(fd, mask)
        poller.register(self.wakeup.fd, select.POLLIN)
        wait = 0 if self._to_slirp or self._calls else timeout.value
        self._revents = {}
        for fd, ev in poller.poll(wait):
            self._revents[fd] = self._revents.get(fd, 0) | ev
        self.wakeup.woke(self._revents.get(self.wakeup.fd, 0))
        self.lib.slirp_pollfds_poll(self.slirp, 0, self._get_revents, None)
        self._fire_timers()

    def _on_slirp_thread(self, fn: Callable[[], object], timeout: float = 5.0) -> object:
        """Run ``fn`` on the slirp thread and return its result (or raise its error)."""
        done = threading.Event()
        box: list = []

        def call() -> None:
            try:
                box.append((True, fn()))
            except Exception as e:  # noqa: BLE001 - handed back to the caller
                box.append((False, e))
            done.set()

        self._calls.append(call)
        self._wake()
        if not done.wait(timeout):
            raise OSError("the slirp thread did not answer")
        ok, value = box[0]
        if not ok:
            raise value
        return value

    # -- host forwarding --------------------------------------------------------------
    def _add_hostfwd_now(self, rule: Hostfwd) -> None:
        if self.lib.slirp_add_hostfwd(self.slirp, int(rule.udp), ffi.InAddr.of(rule.host_addr),
                                      rule.host_port, ffi.InAddr.of(rule.guest_addr),
                                      rule.guest_port) < 0:
            raise HostfwdError(f"Could not set up host forwarding rule '{rule.describe()}'")
        self.rules.append(rule)

    def _add_guestfwd_now(self, fwd: Guestfwd) -> None:
        server = ffi.InAddr.of(fwd.server)
        self._keep.append(server)
        if fwd.command is not None:
            added = self.lib.slirp_add_exec(self.slirp, self._cstr(fwd.command),
                                            ctypes.byref(server), fwd.port)
        else:
            added = self._join_chardev(fwd, server)
        if added < 0:
            raise HostfwdError(f"Conflicting/invalid guestfwd for {fwd.server}:{fwd.port}")

    def _join_chardev(self, fwd: Guestfwd, server: ffi.InAddr) -> int:
        """Guest -> chardev through slirp's write callback (slirp thread); chardev ->
        guest handed to the slirp thread (the chardev reads on the I/O thread)."""
        chardev = self.guestfwd_chardevs[(fwd.server, fwd.port)]

        def to_host(buf: int, length: int, opaque: int) -> int:
            chardev.write(ctypes.string_at(buf, length))
            return length

        def to_guest(data: bytes) -> None:
            def recv() -> None:
                if self.slirp is not None:
                    self.lib.slirp_socket_recv(self.slirp, ffi.InAddr.of(fwd.server),
                                               fwd.port, data, len(data))
            self._calls.append(recv)
            self._wake()

        write_cb = ffi.WRITE_CB(to_host)
        self._keep.append(write_cb)
        chardev.set_receiver(to_guest)
        return self.lib.slirp_add_guestfwd(self.slirp, write_cb, None, ctypes.byref(server),
                                           fwd.port)

    def add_hostfwd(self, text: str) -> Hostfwd:
        """HMP ``hostfwd_add``: QEMU's syntax; HostfwdError with QEMU's message."""
        rule = parse_hostfwd(text, self.cfg.dhcpstart)
        self._on_slirp_thread(lambda: self._add_hostfwd_now(rule))
        return rule

    def remove_hostfwd(self, text: str) -> None:
        """HMP ``hostfwd_remove [tcp|udp]:[hostaddr]:hostport``."""
        proto, sep, rest = text.partition(":")
        host, sep2, port = rest.partition(":")
        if not sep or not sep2 or proto not in ("", "tcp", "udp") or not port.isdigit():
            raise HostfwdError(f"invalid format '{text}'")
        udp = proto == "udp"
        addr = _addr(host, "0.0.0.0", "Bad host address", text)

        def remove() -> None:
            if self.lib.slirp_remove_hostfwd(self.slirp, int(udp), ffi.InAddr.of(addr),
                                             int(port)) < 0:
                raise HostfwdError(f"host forwarding rule for {text} not found")
            self.rules = [r for r in self.rules
                          if (r.udp, r.host_addr, r.host_port) != (udp, addr, int(port))]

        self._on_slirp_thread(remove)

    def describe(self) -> str:
        c = self.cfg
        return f"net={c.net.network_address},restrict={'on' if c.restrict else 'off'}"

    def close(self) -> None:
        if self.slirp is None:
            return
        self._stopping = True
        self.wakeup.wake(force=True)  # the loop tests _stopping only at its top
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        if not self._thread.is_alive():
            self.lib.slirp_cleanup(self.slirp)
        self.slirp = None
        self.wakeup.close()


def _guestfwd_chardevs(opts: NetdevOptions, cfg: UserConfig
                       ) -> dict[tuple[str, int], object]:
    """Open the chardevs of ``guestfwd=...-DEV`` rules (QEMU opens them at start too)."""
    chardevs = {}
    for n, fwd in enumerate(f for f in cfg.guestfwd if f.chardev is not None):
        registry = getattr(opts.network, "chardevs", None)
        if registry is None:
            raise opts.error("guestfwd to a chardev needs the machine's chardevs")
        try:
            chardev = registry.from_legacy(fwd.chardev, f"{opts.id}-guestfwd{n}")
        except OptionError as e:
            raise opts.error(f"could not open guest forwarding device '{fwd.chardev}': "
                             f"{e}") from None
        chardevs[(fwd.server, fwd.port)] = chardev
    return chardevs


def _open(opts: NetdevOptions) -> SlirpBackend:
    cfg = user_config(opts)
    try:
        return SlirpBackend(opts.id, cfg, _guestfwd_chardevs(opts, cfg))
    except HostfwdError as e:
        raise opts.error(str(e)) from None
    except OSError as e:
        raise opts.error(str(e)) from None


def _on_off(name: str, what: str, default: str | None = None) -> Property:
    return Property(name, "bool", default, what, ("on", "off"))


declare_netdev(
    "user", "user-mode NAT through libslirp (DHCP, DNS, TCP/UDP/ICMP echo, hostfwd)", _open,
    Property("net", "str", "10.0.2.0/24", "the guest network, addr[/mask]"),
    Property("host", "str", None, "the host's address on it (default: .2)"),
    Property("dhcpstart", "str", None, "the first address DHCP leases (default: .15)"),
    Property("dns", "str", None, "the DNS forwarder's address (default: .3)"),
    _on_off("ipv4", "IPv4 on the guest network", "on"),
    _on_off("ipv6", "IPv6 on the guest network", "on"),
    Property("ipv6-net", "str", "fec0::/64", "the guest IPv6 prefix, addr/len"),
    _on_off("restrict", "isolate the guest: only hostfwd connections reach it", "off"),
    Property("hostname", "str", None, "the name DHCP hands the guest"),
    Property("domainname", "str", None, "the domain DHCP hands the guest"),
    Property("dnssearch", REPEATABLE, None, "a DNS search domain (repeatable)"),
    Property("tftp", "str", None, "the folder the built-in TFTP server serves"),
    Property("tftp-server-name", "str", None, "the TFTP server name DHCP announces"),
    Property("bootfile", "str", None, "the boot file name DHCP announces"),
    Property("hostfwd", REPEATABLE, None,
             "[tcp|udp]:[hostaddr]:hostport-[guestaddr]:guestport (repeatable)"),
    Property("guestfwd", REPEATABLE, None,
             "[tcp]:server:port-cmd:COMMAND | [tcp]:server:port-DEV: guest connections run "
             "COMMAND or reach chardev spec DEV (repeatable)"),
    refused={
        "smb": "is not implemented in pemu yet",
        "ipv6-host": "is not implemented in pemu yet (the host is prefix::2)",
        "ipv6-dns": "is not implemented in pemu yet (the DNS forwarder is prefix::3)",
        "ipv6-prefix": "is not implemented in pemu yet (use ipv6-net=)",
        "ipv6-prefixlen": "is not implemented in pemu yet (use ipv6-net=)",
        "smbserver": "is not implemented in pemu yet",
    })
