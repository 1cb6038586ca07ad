"""TLS credentials and authorization objects, in-process and against real clients."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time

import pytest

from pemu.crypto.objects import ObjectStore
from pemu.crypto.secret import SecretError
from pemu.crypto.tls_session import TLSRefused, wrap_client, wrap_server
from pemu.qemuopts.keyval import parse_keyval
from tests.hardening.test_sandbox import _backend
from tests.hardening.tls_certs import ALICE_DN, BOB_DN, PKI
from tests.system.conftest import ROOT

needs_openssl = pytest.mark.skipif(shutil.which("openssl") is None,
                                   reason="the openssl command is not installed")


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = tmp_path_factory.mktemp("pki")
    pki = PKI()
    return {"pki": pki, "server": pki.server_dir(d / "server"),
            "alice": pki.client_dir(d / "alice", ALICE_DN),
            "bob": pki.client_dir(d / "bob", BOB_DN), "root": d}


def store_of(*texts: str) -> ObjectStore:
    store = ObjectStore()
    for text in texts:
        store.add(parse_keyval(text, implied_key="qom-type"))
    return store


def session(store: ObjectStore, server: str, client: str, authz: str | None = None):
    """One connection: (what the server saw, what the client read)."""
    listener = socket.create_server(("127.0.0.1", 0))
    seen: dict[str, str] = {}

    def serve() -> None:
        conn, _ = listener.accept()
        try:
            tls = wrap_server(conn, server, authz, store=store, timeout=10)
            tls.sendall(b"hello")
            tls.close()
            seen["ok"] = "served"
        except TLSRefused as e:
            seen["refused"] = str(e)

    t = threading.Thread(target=serve)
    t.start()
    got = b""
    try:
        tls = wrap_client(socket.create_connection(listener.getsockname(), timeout=10),
                          client, hostname="127.0.0.1", store=store, timeout=10)
        got = tls.recv(5)
        tls.close()
    except (TLSRefused, OSError):
        pass
    t.join(20)
    listener.close()
    return seen, got


def x509(oid: str, d, endpoint: str, extra: str = "") -> str:
    return f"tls-creds-x509,id={oid},dir={d},endpoint={endpoint}{extra}"


def test_x509_peer_verification(pki):
    store = store_of(x509("srv", pki["server"], "server"),
                     x509("alice", pki["alice"], "client"),
                     x509("anon", pki["bob"], "client", ",verify-peer=off"))
    assert session(store, "srv", "alice") == ({"ok": "served"}, b"hello")
    # a client with no certificate is refused by a verify-peer=on server
    (pki["root"] / "nocert").mkdir(exist_ok=True)
    shutil.copy(pki["server"] / "ca-cert.pem", pki["root"] / "nocert")
    store.add(parse_keyval(x509("nocert", pki["root"] / "nocert", "client"),
                           implied_key="qom-type"))
    seen, got = session(store, "srv", "nocert")
    assert "refused" in seen and got == b""


@pytest.mark.parametrize("authz, allowed", [
    ("authz-simple,id=az,identity=" + ALICE_DN.replace(",", ",,"), {"alice"}),
    ("authz-list,id=az,policy=deny,rules.0.match=CN=bob*,rules.0.policy=allow,"
     "rules.0.format=glob", {"bob"}),
    ("authz-list,id=az,policy=allow,rules.0.match=CN=bob*,rules.0.policy=deny,"
     "rules.0.format=glob", {"alice"}),
])
def test_authz_decides_by_distinguished_name(pki, authz, allowed):
    store = store_of(x509("srv", pki["server"], "server"), authz,
                     x509("alice", pki["alice"], "client"), x509("bob", pki["bob"], "client"))
    for who in ("alice", "bob"):
        seen, got = session(store, "srv", who, "az")
        assert ("ok" in seen) == (who in allowed), (who, seen)
        assert (got == b"hello") == (who in allowed)
        if who not in allowed:
            assert "is not authorized by 'az'" in seen["refused"]


def test_authz_list_file_refreshes(pki, tmp_path):
    rules = tmp_path / "authz.json"
    rules.write_text(json.dumps({"policy": "deny", "rules": [
        {"match": ALICE_DN, "policy": "allow"}]}))
    store = store_of(x509("srv", pki["server"], "server"),
                     f"authz-list-file,id=az,filename={rules},refresh=on",
                     x509("alice", pki["alice"], "client"))
    assert "ok" in session(store, "srv", "alice", "az")[0]
    time.sleep(0.01)
    rules.write_text(json.dumps({"policy": "deny", "rules": []}))
    assert "refused" in session(store, "srv", "alice", "az")[0]


def test_encrypted_server_key_with_passwordid(pki, tmp_path):
    d = pki["pki"].server_dir(tmp_path / "enc", password=b"s3cret")
    with pytest.raises(SecretError, match="unusable credentials"):
        store_of(x509("srv", d, "server"))
    store = store_of("secret,id=pw,data=s3cret", x509("srv", d, "server", ",passwordid=pw"),
                     x509("alice", pki["alice"], "client"))
    assert session(store, "srv", "alice") == ({"ok": "served"}, b"hello")


@pytest.mark.parametrize("bad, message", [
    ("tls-creds-x509,id=t,endpoint=server", "'dir' is missing"),
    ("tls-creds-x509,id=t,dir=/nonexistent,endpoint=server", "cannot find"),
    ("tls-creds-x509,id=t,dir=/tmp,endpoint=sideways", "endpoint must be"),
    ("authz-simple,id=a", "'identity' is missing"),
    ("authz-simple,id=a,identity=CN=x,O=y", "Property 'O' not found"),
    ("authz-list,id=a,rules.0.match=x,rules.0.policy=maybe", "policy must be"),
    ("tls-creds-psk,id=p,dir=/nonexistent,endpoint=server", "cannot find"),
])
def test_bad_objects_are_clear_errors(bad, message):
    with pytest.raises(SecretError, match=message):
        store_of(bad)


@pytest.fixture
def psk_dir(tmp_path):
    (tmp_path / "keys.psk").write_text("carol:" + "ab" * 32 + "\nqemu:" + "cd" * 32 + "\n")
    return tmp_path


def test_psk_both_ends_and_authz_by_username(psk_dir, tmp_path):
    wrong = tmp_path / "wrong"
    wrong.mkdir()
    (wrong / "keys.psk").write_text("carol:" + "00" * 32 + "\n")
    store = store_of(f"tls-creds-psk,id=srv,dir={psk_dir},endpoint=server",
                     f"tls-creds-psk,id=carol,dir={psk_dir},endpoint=client,username=carol",
                     f"tls-creds-psk,id=qemu,dir={psk_dir},endpoint=client",
                     f"tls-creds-psk,id=liar,dir={wrong},endpoint=client,username=carol",
                     "authz-simple,id=az,identity=carol")
    assert session(store, "srv", "carol", "az") == ({"ok": "served"}, b"hello")
    assert "not authorized" in session(store, "srv", "qemu", "az")[0]["refused"]
    assert session(store, "srv", "qemu") == ({"ok": "served"}, b"hello")
    assert "refused" in session(store, "srv", "liar")[0]


# -- a real pemu, real clients ------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pemu(baremetal, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "pemu.cli.system_riscv64", "-M", "virt", "-m", "64M",
         "-bios", "none", "-kernel", str(baremetal), "-display", "none", "-serial", "null",
         *_backend(), *extra],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env=dict(os.environ, PYTHONPATH=str(ROOT)), cwd=ROOT)


def _wait_port(port: int, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 60
    while True:
        assert proc.poll() is None, proc.stderr.read().decode()
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            assert time.monotonic() < deadline, "pemu never listened"
            time.sleep(0.1)


def _s_client(port: int, *args: str) -> str:
    """QMP through `openssl s_client`: capabilities, query-status; what came back."""
    p = subprocess.Popen(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-quiet",
                          *args],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT)
    lines: list[bytes] = []
    done = threading.Event()

    def read() -> None:
        for line in p.stdout:
            lines.append(line)
            if b'"status"' in line:
                break
        done.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        p.stdin.write(b'{"execute": "qmp_capabilities"}\n{"execute": "query-status"}\n')
        p.stdin.flush()
        done.wait(20)
    finally:
        p.kill()
        p.wait()
        reader.join(5)
    return b"".join(lines).decode(errors="replace")


@needs_openssl
def test_qmp_over_a_tls_chardev_with_openssl_s_client(baremetal, pki, psk_dir):
    port, psk_port = _free_port(), _free_port()
    proc = _pemu(
        baremetal,
        "-object", f"tls-creds-x509,id=tls0,dir={pki['server']},endpoint=server",
        "-object", "authz-simple,id=az0,identity=" + ALICE_DN.replace(",", ",,"),
        "-chardev", f"socket,id=qmp0,host=127.0.0.1,port={port},server=on,wait=off,"
                    "tls-creds=tls0,tls-authz=az0",
        "-mon", "chardev=qmp0,mode=control",
        "-object", f"tls-creds-psk,id=psk0,dir={psk_dir},endpoint=server",
        "-qmp", f"tcp:127.0.0.1:{psk_port},server=on,wait=off,tls-creds=psk0")
    try:
        _wait_port(port, proc)
        ca = str(pki["server"] / "ca-cert.pem")
        alice = _s_client(port, "-CAfile", ca, "-cert", str(pki["alice"] / "client-cert.pem"),
                          "-key", str(pki["alice"] / "client-key.pem"))
        assert '"QMP"' in alice and '"status": "running"' in alice, alice
        for refused in (_s_client(port, "-CAfile", ca),  # no client certificate
                        _s_client(port, "-CAfile", ca,  # a good one, but not authorized
                                  "-cert", str(pki["bob"] / "client-cert.pem"),
                                  "-key", str(pki["bob"] / "client-key.pem"))):
            assert '"QMP"' not in refused, refused
        # after the refusals the monitor still serves the right client
        assert '"status": "running"' in _s_client(
            port, "-CAfile", ca, "-cert", str(pki["alice"] / "client-cert.pem"),
            "-key", str(pki["alice"] / "client-key.pem"))
        good = _s_client(psk_port, "-psk_identity", "carol", "-psk", "ab" * 32)
        assert '"status": "running"' in good, good
        assert '"QMP"' not in _s_client(psk_port, "-psk_identity", "carol", "-psk", "00" * 32)
    finally:
        proc.kill()
        _, err = proc.communicate(timeout=30)
    assert b"is not authorized by 'az0'" in err


def test_tls_options_name_usable_objects(pki):
    """Unknown ids and wrong endpoints are start-up errors, not failures at the first
    client (a chardev's handshake thread would otherwise meet them)."""
    from pemu.chardev.socket import SocketChardev
    from pemu.crypto.objects import user_objects

    store = user_objects()
    store.sync([parse_keyval(x509("cli0", pki["alice"], "client"), implied_key="qom-type")])
    try:
        with pytest.raises(SecretError, match="No TLS credentials with id 'nope'"):
            SocketChardev(host="127.0.0.1", port=0, server=True, wait=False, tls_creds="nope")
        with pytest.raises(Exception, match="endpoint=client; this socket needs server"):
            SocketChardev(host="127.0.0.1", port=0, server=True, wait=False, tls_creds="cli0")
        with pytest.raises(TLSRefused, match="endpoint=client"):
            wrap_server(socket.socket(), "cli0")
    finally:
        store.remove("cli0")
