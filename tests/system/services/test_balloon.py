"""virtio-balloon-pci on the real Debian guest (issue 21): the balloon takes half the
guest's memory and gives it back, the guest's statistics reach qom-get, and memory
the guest frees goes back to the host (free page reporting: pemu's RSS falls)."""

from __future__ import annotations

import json
import re
import time

import pytest

from tests.system.services.conftest import GUEST_RAM_MIB
from tests.system.test_debian_net import QMP

pytestmark = pytest.mark.slow

RAM = GUEST_RAM_MIB << 20
BALLOON = "/machine/peripheral/balloon0"
FILL_MIB = GUEST_RAM_MIB // 2  # what the guest writes to its RAM-backed root and frees


class EventQMP(QMP):
    """The shared QMP client, keeping the events it reads past."""

    def __init__(self, path: str) -> None:
        self.events: list[dict] = []
        super().__init__(path)

    def _read(self) -> dict:
        while True:
            msg = json.loads(self.file.readline())
            if "event" not in msg:
                return msg
            self.events.append(msg)


def wait_until(predicate, timeout: float, step: float = 1.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()


def meminfo_kb(guest, field: str) -> int:
    out = guest.console.run(f"grep '^{field}:' /proc/meminfo", "MEMINFO-DONE", timeout=120)
    m = re.search(rf"^{field}:\s+(\d+) kB", out, re.M)
    assert m, out
    return int(m.group(1))


def vm_rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_balloon_takes_half_the_memory_and_gives_it_back(services_guest):
    qmp = EventQMP(services_guest.qmp_path)
    try:
        assert qmp.execute("query-balloon") == {"actual": RAM}
        total = meminfo_kb(services_guest, "MemTotal")
        qmp.execute("balloon", value=RAM // 2)
        assert wait_until(lambda: qmp.execute("query-balloon")["actual"] == RAM // 2, 300), \
            qmp.execute("query-balloon")
        assert any(e["event"] == "BALLOON_CHANGE" for e in qmp.events)
        assert qmp.events[-1]["data"] == {"actual": RAM // 2}
        assert qmp.hmp("info balloon").strip() == f"balloon: actual={GUEST_RAM_MIB // 2}"
        shrunk = meminfo_kb(services_guest, "MemTotal")
        assert total - shrunk == RAM // 2 // 1024  # exactly the balloon's pages
        # the guest's statistics, as libvirt polls them
        qmp.execute("qom-set", path=BALLOON, property="guest-stats-polling-interval", value=2)
        assert qmp.execute("qom-get", path=BALLOON,
                           property="guest-stats-polling-interval") == 2

        def stats() -> dict:
            return qmp.execute("qom-get", path=BALLOON, property="guest-stats")

        first = stats()["last-update"]
        assert wait_until(lambda: stats()["last-update"] > first, 60)
        values = stats()["stats"]
        assert values["stat-total-memory"] == shrunk * 1024
        assert 0 < values["stat-free-memory"] < shrunk * 1024
        qmp.execute("qom-set", path=BALLOON, property="guest-stats-polling-interval", value=0)
        # deflate: all of it back
        qmp.execute("balloon", value=RAM)
        assert wait_until(lambda: qmp.execute("query-balloon")["actual"] == RAM, 300)
        assert meminfo_kb(services_guest, "MemTotal") == total
    finally:
        qmp.close()


def test_memory_the_guest_frees_goes_back_to_the_host(services_guest):
    pid = services_guest.proc.pid
    out = services_guest.console.run(
        f"dd if=/dev/zero of=/tmp/balloon-fill bs=1M count={FILL_MIB} 2>&1 | tail -1",
        "FILL-DONE", timeout=600)
    assert "copied" in out or "records out" in out or "bytes" in out, out
    peak = vm_rss_kb(pid)
    services_guest.console.run("rm /tmp/balloon-fill", "RM-DONE", timeout=120)
    # Linux reports free blocks about 2 s after they are freed, in 4 MiB chunks
    want = GUEST_RAM_MIB * 1024 // 4
    assert wait_until(lambda: peak - vm_rss_kb(pid) >= want, 180), (
        f"RSS {peak} kB after writing {FILL_MIB} MiB, {vm_rss_kb(pid)} kB after freeing: "
        f"less than {want} kB went back")
