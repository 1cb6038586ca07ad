"""Migration over TLS (migrate-set-parameters tls-creds/tls-authz/tls-hostname) between
pemu processes running the bare-metal heartbeat: a source whose certificate comes from
another CA, and one whose DN the destination's authz list refuses, are refused (the
destination reports the error and exits, the source's guest runs on); the right
certificate migrates and the heartbeat goes on at the destination; file: has no TLS."""

from __future__ import annotations

import time

import pytest

from tests.hardening.tls_certs import ALICE_DN, PKI
from tests.migration.pemu_process import Pemu
from tests.migration.test_live_migration import _args, _free_port
from tests.system import conftest as system_conftest

build_program = system_conftest.build_program


@pytest.fixture(scope="module")
def ticker(build_program):  # noqa: F811 - the fixture above
    return str(build_program("ticker", TICK_PERIOD=500000))


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = tmp_path_factory.mktemp("migpki")
    ours, theirs = PKI(), PKI()
    return {"server": ours.server_dir(d / "server"),
            "alice": ours.client_dir(d / "alice", ALICE_DN),
            "stranger": theirs.client_dir(d / "stranger", ALICE_DN)}


DENY_ALICE = ("authz-list,id=auth0,policy=allow,rules.0.match=CN=alice*,"
              "rules.0.policy=deny,rules.0.format=glob")
ALLOW_ALICE = ("authz-list,id=auth0,policy=deny,rules.0.match=CN=alice*,"
               "rules.0.policy=allow,rules.0.format=glob")


def _destination(tmp_path, ticker, pki, name: str, authz: str | None = None) -> Pemu:
    objects = ["-object", f"tls-creds-x509,id=tls0,dir={pki['server']},endpoint=server"]
    if authz:
        objects += ["-object", authz]
    vm = Pemu(tmp_path, *_args(ticker), *objects, "-incoming", "defer", name=name)
    vm.authz = authz  # type: ignore[attr-defined]
    return vm


def _listen(vm: Pemu) -> str:
    """TLS parameters set, then migrate-incoming (QEMU's order with -incoming defer)."""
    port = _free_port()
    params = {"tls-creds": "tls0", **({"tls-authz": "auth0"} if vm.authz else {})}
    vm.qmp.cmd("migrate-set-parameters", **params)
    assert vm.qmp.cmd("query-migrate-parameters")["tls-creds"] == "tls0"
    vm.qmp.cmd("migrate-incoming", uri=f"tcp:127.0.0.1:{port}")
    return f"tcp:127.0.0.1:{port}"


def _refused(src: Pemu, dst: Pemu, uri: str, creds: str, handshake_fails: bool) -> None:
    """``handshake_fails``: the source sees the refusal in the handshake; an authz
    refusal comes after it, as a connection the destination dropped unread (the whole
    state of this small guest fits in the socket buffers: the source learns it from
    the reset that answers its last bytes, pemu/migration/tls.confirm_delivery)."""
    src.qmp.cmd("migrate-set-parameters", **{"tls-creds": creds})
    src.qmp.cmd("migrate", uri=uri)
    info = src.wait_migration({"completed", "failed"})
    assert info["status"] == "failed", info
    assert ("TLS" in info["error-desc"]) == handshake_fails, info
    assert dst.proc.wait(60) != 0
    time.sleep(0.2)  # the stderr reader drains what is left
    err = dst.err.decode(errors="replace")
    assert "load of migration failed" in err and "TLS" in err, err
    assert ("not authorized" in err) != handshake_fails, err
    assert "Traceback" not in err
    assert src.qmp.cmd("query-status")["status"] == "running"
    src.wait_ticks(3)  # the source's guest runs on


def test_migration_tls(ticker, pki, tmp_path):
    src = Pemu(tmp_path, *_args(ticker),
               "-object", f"tls-creds-x509,id=good,dir={pki['alice']},endpoint=client",
               "-object", f"tls-creds-x509,id=bad,dir={pki['stranger']},endpoint=client",
               name="src")
    # started together: each process takes seconds to start on a loaded host
    wrong_ca, denied, allowed = (_destination(tmp_path, ticker, pki, "d1"),
                                 _destination(tmp_path, ticker, pki, "d2", DENY_ALICE),
                                 _destination(tmp_path, ticker, pki, "d3", ALLOW_ALICE))
    vms = [src, wrong_ca, denied, allowed]
    try:
        src.wait_ticks(3)
        # -object ids are listed where QEMU lists them
        objects = {e["name"]: e["type"] for e in src.qmp.cmd("qom-list", path="/objects")}
        assert objects["good"] == objects["bad"] == "child<tls-creds-x509>", objects
        # file: (and exec:) have no TLS: a clear error, the guest runs on
        src.qmp.cmd("migrate-set-parameters", **{"tls-creds": "good"})
        src.qmp.cmd("migrate", uri=f"file:{tmp_path}/state")
        info = src.wait_migration({"completed", "failed"})
        assert info["status"] == "failed" and "TLS" in info["error-desc"], info
        # a certificate from another CA: the destination refuses the handshake
        _refused(src, wrong_ca, _listen(wrong_ca), "bad", handshake_fails=True)
        # the right CA, but the authz list refuses alice's DN
        _refused(src, denied, _listen(denied), "good", handshake_fails=False)
        # allowed: the state moves and the heartbeat goes on from the source's count
        uri = _listen(allowed)
        src.qmp.cmd("migrate-set-parameters", **{"tls-creds": "good",
                                                 "tls-hostname": "127.0.0.1"})
        src.qmp.cmd("migrate", uri=uri)
        info = src.wait_migration({"completed", "failed"})
        assert info["status"] == "completed", info
        time.sleep(0.5)
        last = src.ticks()[-1]
        got = allowed.wait_ticks(3)
        assert last <= got[0] <= last + 2
        assert "Traceback" not in allowed.err.decode(errors="replace")
    finally:
        for vm in vms:
            vm.finish()

