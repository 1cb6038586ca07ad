"""All monitors of one machine: building them from the command line, and tearing down.

  -qmp unix:PATH,server=on,wait=off        QMP on a UNIX socket (0600)
  -qmp tcp:HOST:PORT,server=on,wait=off,tls-creds=ID   QMP over TLS
  -qmp tcp:...,insecure=on                 plain TCP, only when asked for, with a warning
  -monitor stdio | unix:... | tcp:...      HMP, same transports
  -chardev ...,id=ID -mon chardev=ID[,mode=control|readline]
  -serial mon:stdio / -nographic           HMP muxed with the console (Ctrl-A c)

A board calls ``create_monitors(cfg, machine, chardevs)`` once its chardev registry
exists and before it starts the vCPUs (``wait=on`` blocks until a client connects).
"""

from __future__ import annotations

import socket
import sys

from pemu import threads
from pemu.monitor.chardev_transport import ChardevMonitor
from pemu.monitor.commands import SCHEMA
from pemu.monitor.hmp import HMPSession
from pemu.monitor.listener import Connection, Listener, bind_tcp, bind_unix_private
from pemu.monitor.qmp import CommandContext, QMPSession
from pemu.monitor.tls import load_tls_objects, server_wrapper
from pemu.qemuopts.keyval import OptionError, parse_bool, parse_keyval

CONTROL = "control"  # QMP
READLINE = "readline"  # HMP
_SOCKET_KEYS = {"server", "wait", "nowait", "tls-creds", "tls-authz", "insecure", "nodelay",
                "pretty"}


class MonitorSet:
    def __init__(self, machine) -> None:
        self.machine = machine
        self.listeners: list[Listener] = []
        self.chardev_monitors: list[ChardevMonitor] = []
        self._client_sockets: list[Connection] = []

    # -- sessions -------------------------------------------------------------------
    def new_session(self, mode: str, send, echo: bool = False):
        """A QMP or HMP session writing through ``send``."""
        if mode == CONTROL:
            return QMPSession(SCHEMA, lambda s: CommandContext(self.machine, self, s), send,
                              events=self.machine.events)
        return HMPSession(self.machine, self, send, echo=echo)

    def _session_for(self, mode: str, conn: Connection):
        session = self.new_session(mode, conn.send)
        session.passed_fds = conn.passed_fds  # add-fd/getfd take what came with SCM_RIGHTS
        return session

    # -- -qmp / -monitor strings -------------------------------------------------------
    def add_spec(self, spec: str, mode: str, chardevs=None) -> None:
        opt = "-qmp" if mode == CONTROL else "-monitor"
        if spec == "none":
            return
        if spec.startswith(("unix:", "tcp:")):
            self._add_socket(spec, mode, opt)
            return
        if chardevs is None:
            raise OptionError(f"{opt} {spec}: this machine has no character devices")
        # stdio, file:, pty, chardev:ID, mon:... are chardev specs
        frontend = chardevs.from_legacy(spec, "compat_monitor" + str(len(chardevs.chardevs)))
        if frontend is not None:
            self.add_chardev(frontend, mode)

    def _add_socket(self, spec: str, mode: str, opt: str) -> None:
        kind, _, rest = spec.partition(":")
        where, _, tail = rest.partition(",")
        opts = parse_keyval(tail) if tail else {}
        unknown = set(opts) - _SOCKET_KEYS
        if unknown:
            raise OptionError(f"{opt} {spec}: invalid parameter '{sorted(unknown)[0]}'")
        server = parse_bool(opts.get("server", "off"), f"{opt} server")
        wait = "nowait" not in opts and parse_bool(opts.get("wait", "on"), f"{opt} wait")
        creds = None
        if "tls-creds" in opts:
            creds = server_wrapper(f"{opt} {spec}", opts["tls-creds"], opts.get("tls-authz"))
        elif "tls-authz" in opts:
            raise OptionError(f"{opt} {spec}: tls-authz needs tls-creds")
        if kind == "tcp":
            insecure = parse_bool(opts.get("insecure", "off"), f"{opt} insecure")
            if creds is None and not insecure:
                raise OptionError(
                    f"{opt} {spec}: a TCP monitor controls the whole machine; give it TLS "
                    "(-object tls-creds-x509,id=tls0,dir=DIR,endpoint=server and "
                    "tls-creds=tls0) or accept the risk with insecure=on")
            if creds is None:
                print(f"pemu: warning: {opt} {spec}: monitor on plain TCP: anyone who can "
                      "reach this port controls the machine", file=sys.stderr)
        elif creds is not None:
            raise OptionError(f"{opt} {spec}: tls-creds applies to tcp: sockets only")
        if not server:
            self._connect_out(kind, where, mode, opt, spec)
            return
        if kind == "unix":
            sock = bind_unix_private(where)
            unix_path = where
        else:
            host, sep, port = where.rpartition(":")
            if not sep or not port.isdigit():
                raise OptionError(f"{opt} {spec}: expected tcp:HOST:PORT")
            sock = bind_tcp(host.strip("[]"), int(port))
            unix_path = None
        listener = Listener(sock, lambda conn: self._session_for(mode, conn),
                            f"{'qmp' if mode == CONTROL else 'monitor'}",
                            creds, unix_path)
        self.listeners.append(listener)
        if wait:
            print(f"pemu: waiting for connection on: {kind}:{where},server=on",
                  file=sys.stderr, flush=True)
            listener.first_client.wait()

    def _connect_out(self, kind: str, where: str, mode: str, opt: str, spec: str) -> None:
        """server=off: the monitor connects to a listening client (QEMU's reverse mode)."""
        try:
            if kind == "unix":
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.connect(where)
            else:
                host, _, port = where.rpartition(":")
                sock = socket.create_connection((host or "127.0.0.1", int(port)))
        except (OSError, ValueError) as e:
            raise OptionError(f"{opt} {spec}: could not connect: {e}") from None
        # Serve it like an accepted client, on a one-shot listener thread of its own.

        conn = Connection(sock)
        self._client_sockets.append(conn)
        session = self.new_session(mode, conn.send)

        def serve() -> None:
            session.start()
            while True:
                try:
                    data = sock.recv(65536)
                except OSError:
                    break
                if not data:
                    break
                session.feed(data)
            session.close()
            conn.close()

        threads.start_daemon(serve, name="pemu-monitor-out")

    # -- -mon chardev=ID ------------------------------------------------------------
    def add_chardev(self, chardev, mode: str) -> ChardevMonitor:
        monitor = ChardevMonitor(chardev, lambda send, echo: self.new_session(mode, send, echo),
                                 mode)
        self.chardev_monitors.append(monitor)
        return monitor

    def close(self) -> None:
        for listener in self.listeners:
            listener.close()
        for monitor in self.chardev_monitors:
            monitor.close()
        for conn in self._client_sockets:
            conn.close()
        self.machine.block.close()


def create_monitors(cfg, machine, chardevs=None) -> MonitorSet:
    """Every monitor the command line asked for (SystemConfig.qmp/monitor/mon)."""
    load_tls_objects(cfg.objects)
    machine.objects.update({o["id"]: o for o in cfg.objects if "id" in o})
    ram = getattr(cfg, "ram_backend", None)
    machine.memory_backend = ram["id"] if ram else None  # object-del refuses it
    machine.chardevs = chardevs
    monitors = MonitorSet(machine)
    try:
        for spec in cfg.qmp:
            monitors.add_spec(spec, CONTROL, chardevs)
        for spec in cfg.monitor:
            monitors.add_spec(spec, READLINE, chardevs)
        for opts in cfg.mon:
            unknown = set(opts) - {"chardev", "mode", "pretty", "insecure", "id"}
            if unknown:
                raise OptionError(f"-mon: invalid parameter '{sorted(unknown)[0]}'")
            mode = opts.get("mode", READLINE)
            if mode not in (CONTROL, READLINE):
                raise OptionError(f"-mon mode={mode}: use mode=control or mode=readline")
            if chardevs is None:
                raise OptionError("-mon: this machine has no character devices")
            chardev = chardevs.get(opts["chardev"])
            _refuse_plain_tcp(chardev, opts)
            monitors.add_chardev(chardevs.attach(opts["chardev"], "monitor"), mode)
        if chardevs is not None:
            for frontend in chardevs.monitor_frontends:  # -serial mon:stdio, -nographic
                monitors.add_chardev(frontend, READLINE)
    except BaseException:
        monitors.close()
        raise
    return monitors


def _refuse_plain_tcp(chardev, opts: dict[str, str]) -> None:
    backend = getattr(chardev, "backend", chardev)
    if getattr(backend, "unix", True) or getattr(backend, "tls", False):
        return
    if not parse_bool(opts.get("insecure", "off"), "-mon insecure"):
        raise OptionError(f"-mon chardev={opts['chardev']}: a monitor on a TCP chardev has "
                          "no TLS; use a unix socket, -qmp tcp:...,tls-creds=ID, or add "
                          "insecure=on to -mon to accept the risk")
    print(f"pemu: warning: -mon chardev={opts['chardev']}: monitor on plain TCP",
          file=sys.stderr)
