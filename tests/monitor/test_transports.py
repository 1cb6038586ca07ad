"""Monitor transports: TLS over TCP, the insecure opt-in, -mon on a chardev, HMP on a
socket and HMP muxed with the serial console (Ctrl-A c)."""

from __future__ import annotations

import asyncio
import datetime
import json
import os
import socket
import ssl
import time

import pytest
from qemu.qmp import QMPClient

from pemu.monitor.server import create_monitors
from pemu.qemuopts.config import SystemConfig
from pemu.qemuopts.keyval import OptionError

from .tcg_machine import TCGLoopMachine


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _write_certs(d) -> None:
    """A CA, a server certificate for 127.0.0.1 and a client certificate, QEMU layout."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def pem_key(key) -> bytes:
        return key.private_bytes(serialization.Encoding.PEM,
                                 serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(name("pemu test CA"))
          .issuer_name(name("pemu test CA")).public_key(ca_key.public_key())
          .serial_number(1).not_valid_before(now - datetime.timedelta(days=1))
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))

    def leaf(cn: str, usage, serial: int, san=None):
        key = ec.generate_private_key(ec.SECP256R1())
        b = (x509.CertificateBuilder().subject_name(name(cn)).issuer_name(ca.subject)
             .public_key(key.public_key()).serial_number(serial)
             .not_valid_before(now - datetime.timedelta(days=1))
             .not_valid_after(now + datetime.timedelta(days=1))
             .add_extension(x509.ExtendedKeyUsage([usage]), critical=False))
        if san:
            b = b.add_extension(x509.SubjectAlternativeName(san), critical=False)
        return key, b.sign(ca_key, hashes.SHA256())

    skey, scert = leaf("127.0.0.1", ExtendedKeyUsageOID.SERVER_AUTH, 2,
                       [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
    ckey, ccert = leaf("client", ExtendedKeyUsageOID.CLIENT_AUTH, 3)
    pem = serialization.Encoding.PEM
    (d / "ca-cert.pem").write_bytes(ca.public_bytes(pem))
    (d / "server-cert.pem").write_bytes(scert.public_bytes(pem))
    (d / "server-key.pem").write_bytes(pem_key(skey))
    (d / "client-cert.pem").write_bytes(ccert.public_bytes(pem))
    (d / "client-key.pem").write_bytes(pem_key(ckey))


def test_tcp_qmp_requires_tls_or_an_explicit_opt_in(capsys):
    machine = TCGLoopMachine(1)
    try:
        port = _free_port()
        with pytest.raises(OptionError, match="TLS"):
            create_monitors(SystemConfig(qmp=[f"tcp:127.0.0.1:{port},server=on,wait=off"]),
                            machine)
        monitors = create_monitors(SystemConfig(
            qmp=[f"tcp:127.0.0.1:{port},server=on,wait=off,insecure=on"]), machine)
        assert "warning" in capsys.readouterr().err

        async def go():
            c = QMPClient("t")
            await c.connect(("127.0.0.1", port))
            status = await c.execute("query-status")
            await c.disconnect()
            return status

        assert asyncio.run(go())["running"] is True
        monitors.close()
    finally:
        machine.shutdown_threads()


def test_qmp_over_tls_with_client_certificates(tmp_path):
    _write_certs(tmp_path)
    port = _free_port()
    machine = TCGLoopMachine(1)
    cfg = SystemConfig(
        objects=[{"qom-type": "tls-creds-x509", "id": "tls0", "dir": str(tmp_path),
                  "endpoint": "server", "verify-peer": "on"}],
        qmp=[f"tcp:127.0.0.1:{port},server=on,wait=off,tls-creds=tls0"])
    monitors = create_monitors(cfg, machine)
    try:
        ctx = ssl.create_default_context(cafile=str(tmp_path / "ca-cert.pem"))
        ctx.load_cert_chain(str(tmp_path / "client-cert.pem"), str(tmp_path / "client-key.pem"))

        # qemu.qmp connects and runs commands over TLS too, but its disconnect() stalls in
        # asyncio's TLS shutdown, so this test speaks QMP over a plain ssl socket.
        with ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=10),
                             server_hostname="127.0.0.1") as tls:
            f = tls.makefile("rwb", buffering=0)
            greeting = json.loads(f.readline())

            def ask(obj) -> dict:
                f.write(json.dumps(obj).encode() + b"\n")
                return json.loads(f.readline())

            assert ask({"execute": "qmp_capabilities"}) == {"return": {}}
            target = ask({"execute": "query-target", "id": 1})
            objs = ask({"execute": "qom-list", "arguments": {"path": "/objects"}})["return"]
        assert greeting["QMP"]["version"]["qemu"]["major"] == 7
        assert target == {"return": {"arch": "riscv64"}, "id": 1}
        assert {"name": "tls0", "type": "child<tls-creds-x509>"} in objs
        # without a client certificate the handshake fails and nothing is served
        bare = ssl.create_default_context(cafile=str(tmp_path / "ca-cert.pem"))
        with socket.create_connection(("127.0.0.1", port)) as raw:
            with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
                with bare.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                    tls.recv(100) or (_ for _ in ()).throw(ConnectionError("closed"))
        # plain text to a TLS port gets no greeting
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
            raw.sendall(b'{"execute": "qmp_capabilities"}\n')
            try:
                data = raw.recv(100)
            except (ConnectionError, TimeoutError):
                data = b""
            assert b"QMP" not in data
    finally:
        monitors.close()
        machine.shutdown_threads()


def _read_until(sock: socket.socket, marker: bytes, timeout: float = 10) -> bytes:
    sock.settimeout(timeout)
    data = b""
    while marker not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def test_mon_chardev_control_and_hmp_on_a_socket(tmp_path):
    from pemu.chardev.registry import ChardevRegistry

    machine = TCGLoopMachine(1)
    registry = ChardevRegistry()
    qmp_path = str(tmp_path / "qmp-chardev.sock")
    hmp_path = str(tmp_path / "hmp.sock")
    registry.add({"backend": "socket", "id": "mon0", "path": qmp_path, "server": "on",
                  "wait": "off"})
    cfg = SystemConfig(mon=[{"chardev": "mon0", "mode": "control"}],
                       monitor=[f"unix:{hmp_path},server=on,wait=off"])
    monitors = create_monitors(cfg, machine, registry)
    try:
        async def qmp():
            c = QMPClient("mon")
            await c.connect(qmp_path)
            await c.execute("stop")
            chardevs = await c.execute("query-chardev")
            await c.disconnect()
            return chardevs

        chardevs = asyncio.run(asyncio.wait_for(qmp(), 30))
        assert any(x["label"] == "mon0" and "unix" in x["filename"] for x in chardevs)
        # libvirt's next connection comes while its last one is closing: it waits for
        # the first to leave, then gets a greeting and a session of its own
        first, second = socket.socket(socket.AF_UNIX), socket.socket(socket.AF_UNIX)
        with first, second:
            first.connect(qmp_path)
            assert b'"QMP"' in _read_until(first, b"\n")
            first.sendall(b'{"execute":"qmp_capabilities","id":1}\n')
            assert b'"id": 1' in _read_until(first, b"\n")
            second.connect(qmp_path)
            first.close()
            assert b'"QMP"' in _read_until(second, b"\n")
            second.sendall(b'{"execute":"qmp_capabilities","id":2}\n')
            assert b'"return": {}, "id": 2' in _read_until(second, b"\n")
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(hmp_path)
            banner = _read_until(s, b"(qemu) ")
            assert banner.startswith(b"QEMU 7.2.0 monitor - type 'help'")
            s.sendall(b"info status\n")
            assert b"VM status: paused" in _read_until(s, b"(qemu) ")
            s.sendall(b"cont\ninfo status\n")
            out = _read_until(s, b"running")
            assert b"VM status: running" in out
            s.sendall(b"info cpus\n")
            assert b"* CPU #0: pc=0x" in _read_until(s, b"thread_id")
            s.sendall(b"xp /3xb 0x1000\n")
            # the first bytes of the guest program: lui a0,0x10 = 0x00010537
            assert b"0000000000001000: 0x37 0x05 0x01" in _read_until(s, b"0x01")
            s.sendall(b"help\n")
            assert b"system_powerdown" in _read_until(s, b"quit")
            s.sendall(b"frobnicate\n")
            assert b"unknown command: 'frobnicate'" in _read_until(s, b"frobnicate'")
    finally:
        monitors.close()
        machine.shutdown_threads()
        registry.close_all()


def test_hmp_muxed_with_the_serial_console(tmp_path):
    """mon:... shares one backend between the console and HMP; Ctrl-A c switches."""
    from pemu.chardev.registry import ChardevRegistry

    machine = TCGLoopMachine(1)
    registry = ChardevRegistry()
    path = str(tmp_path / "console.sock")
    serial = registry.from_legacy(f"mon:unix:{path},server=on,wait=off", "serial0")
    got_by_serial: list[bytes] = []
    serial.set_receiver(got_by_serial.append)
    monitors = create_monitors(SystemConfig(), machine, registry)
    try:
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(path)
            time.sleep(0.2)
            s.sendall(b"ls\r")  # goes to the guest console while it has the focus
            deadline = time.monotonic() + 5
            while not got_by_serial and time.monotonic() < deadline:
                time.sleep(0.02)
            assert b"".join(got_by_serial) == b"ls\r"
            s.sendall(b"\x01c")  # Ctrl-A c: to the monitor
            assert b"QEMU 7.2.0 monitor" in _read_until(s, b"(qemu) ")
            s.sendall(b"info version\r")
            out = _read_until(s, b"pemu")
            assert b"info version" in out  # raw terminal: the line editor echoes
            assert b"7.2.0 (pemu 0.1.0)" in out
            s.sendall(b"stop\r")
            _read_until(s, b"(qemu) ")
            deadline = time.monotonic() + 5
            while machine.run_state != "paused" and time.monotonic() < deadline:
                time.sleep(0.02)
            assert machine.run_state == "paused"
            s.sendall(b"\x01c")  # and back to the console
            time.sleep(0.2)
            s.sendall(b"x")
            deadline = time.monotonic() + 5
            while b"".join(got_by_serial) != b"ls\rx" and time.monotonic() < deadline:
                time.sleep(0.02)
            assert b"".join(got_by_serial) == b"ls\rx"
    finally:
        monitors.close()
        machine.shutdown_threads()
        registry.close_all()


def test_unix_socket_never_replaces_a_regular_file(tmp_path):
    victim = tmp_path / "precious.txt"
    victim.write_text("keep me")
    machine = TCGLoopMachine(1)
    try:
        with pytest.raises(OptionError, match="not a socket"):
            create_monitors(SystemConfig(qmp=[f"unix:{victim},server=on,wait=off"]), machine)
    finally:
        machine.shutdown_threads()
    assert victim.read_text() == "keep me"
    assert json.dumps(os.listdir(tmp_path)) == json.dumps(["precious.txt"])
