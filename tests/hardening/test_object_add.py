"""QMP object-add / object-del for security objects and memory backends, with QEMU's
errors, and every object listed under qom-list /objects."""

from __future__ import annotations

import base64

import pytest

from pemu.crypto.objects import user_objects
from pemu.monitor.commands import SCHEMA
from pemu.monitor.qmp import CommandContext, QMPSession
from tests.hardening.tls_certs import ALICE_DN, PKI
from tests.monitor.tcg_machine import TCGLoopMachine

IDS = ("sec0", "tls0", "az0", "ram1")


@pytest.fixture
def qmp():
    for oid in IDS:  # the object store is the process's: another test may have left one
        user_objects().remove(oid)
    machine = TCGLoopMachine(1)
    machine.objects["ram0"] = {"qom-type": "memory-backend-ram", "id": "ram0",
                               "size": "64M"}
    machine.memory_backend = "ram0"  # as -machine memory-backend=ram0 leaves it
    session = QMPSession(SCHEMA, lambda s: CommandContext(machine, None, s),
                         lambda data: None)
    session.negotiation_done()

    def execute(name: str, **args):
        reply = session.handle({"execute": name, "arguments": args})
        assert reply is not None
        return reply

    try:
        yield execute
    finally:
        session.close()
        machine.shutdown_threads()
        for oid in IDS:
            user_objects().remove(oid)


def _objects(qmp) -> dict[str, str]:
    return {e["name"]: e["type"] for e in qmp("qom-list", path="/objects")["return"]}


def _error(reply: dict) -> str:
    assert "error" in reply, reply
    assert reply["error"]["class"] == "GenericError"
    return reply["error"]["desc"]


def test_security_objects_come_and_go(qmp, tmp_path):
    PKI().server_dir(tmp_path)
    data = base64.b64encode(b"s3cret").decode()
    assert qmp("object-add", **{"qom-type": "secret", "id": "sec0", "data": data,
                                "format": "base64"}) == {"return": {}}
    assert user_objects().secret("sec0") == b"s3cret"
    assert qmp("object-add", **{"qom-type": "tls-creds-x509", "id": "tls0",
                                "dir": str(tmp_path), "endpoint": "server",
                                "verify-peer": False}) == {"return": {}}
    assert user_objects().tls_creds("tls0").verify_peer is False
    # authz-list's rules come as a JSON list, as QEMU's QAPI takes them
    assert qmp("object-add", **{"qom-type": "authz-list", "id": "az0", "policy": "deny",
                                "rules": [{"match": ALICE_DN, "policy": "allow"}]}) \
        == {"return": {}}
    authz = user_objects().authz("az0")
    assert authz.is_allowed(ALICE_DN) and not authz.is_allowed("CN=bob")
    listed = _objects(qmp)
    assert listed["sec0"] == "child<secret>" and listed["tls0"] == "child<tls-creds-x509>"
    assert listed["az0"] == "child<authz-list>" and listed["ram0"] == \
        "child<memory-backend-ram>"
    # QEMU's errors
    assert "duplicate property 'sec0'" in _error(
        qmp("object-add", **{"qom-type": "secret", "id": "sec0", "data": "x"}))
    assert _error(qmp("object-add", **{"qom-type": "no-such-type", "id": "x"})) == \
        "Parameter 'qom-type' does not accept value 'no-such-type'"
    assert "not found" in _error(qmp("object-add", **{"qom-type": "secret", "id": "s9",
                                                      "data": "x", "bogus": "1"}))
    assert "s9" not in _objects(qmp)
    for oid in ("sec0", "tls0", "az0"):
        assert qmp("object-del", id=oid) == {"return": {}}
    assert not {"sec0", "tls0", "az0"} & set(_objects(qmp))
    with pytest.raises(Exception, match="No secret"):
        user_objects().secret("sec0")
    assert _error(qmp("object-del", id="sec0")) == "object 'sec0' not found"


def test_memory_backends(qmp):
    assert _error(qmp("object-del", id="ram0")) == "object 'ram0' is in use, can not be deleted"
    assert "ram0" in _objects(qmp)
    assert "size 0" in _error(qmp("object-add", **{"qom-type": "memory-backend-ram",
                                                   "id": "ram1"}))
    assert qmp("object-add", **{"qom-type": "memory-backend-ram", "id": "ram1",
                                "size": 1 << 20}) == {"return": {}}
    assert qmp("object-del", id="ram1") == {"return": {}}
    # checked as -object checks it (the machine has no memory hot-plug to use it)
    assert "no-such-property" in _error(qmp("object-add", **{
        "qom-type": "memory-backend-memfd", "id": "m", "size": 4096, "no-such-property": 1}))


def test_hmp_object_add_and_del(qmp):
    def hmp(line: str) -> str:
        return qmp("human-monitor-command", **{"command-line": line})["return"]

    assert hmp("object_add secret,id=sec0,data=abc") == ""
    assert user_objects().secret("sec0") == b"abc"
    assert "duplicate property" in hmp("object_add secret,id=sec0,data=abc")
    assert hmp("object_del sec0") == "" and "sec0" not in _objects(qmp)
    assert "is in use" in hmp("object_del ram0")
