"""A share (a temporary host directory) with a server and a client attached to it."""

from __future__ import annotations

import pytest

from pemu.fs9p.beneath import use_openat2
from pemu.fs9p.local import LocalFS
from pemu.fs9p.server import Server
from tests.fs9p.client9p import Client


class Share:
    def __init__(self, tmp_path, model: str = "passthrough", readonly: bool = False) -> None:
        self.root = tmp_path / "share"
        self.root.mkdir(exist_ok=True)
        self.outside = tmp_path / "outside"  # what the guest must never reach
        self.outside.mkdir(exist_ok=True)
        (self.outside / "secret").write_text("host secret\n")
        self.fs = LocalFS(str(self.root), model, readonly)
        self.server = Server(self.fs)
        self.client = Client(self.server)
        self.rootfid = self.client.attach()

    def close(self) -> None:
        self.server.close()
        self.fs.close()


@pytest.fixture(params=["openat2", "component-walk"])
def resolver(request):
    """Every test that takes this runs twice: with openat2, and with the O_NOFOLLOW
    component walk that stands in where the kernel has no openat2."""
    use_openat2(None if request.param == "openat2" else False)
    yield request.param
    use_openat2(None)


@pytest.fixture
def share(tmp_path, resolver):
    s = Share(tmp_path)
    yield s
    s.close()


@pytest.fixture
def make_share(tmp_path):
    made = []

    def make(model: str = "passthrough", readonly: bool = False) -> Share:
        made.append(Share(tmp_path, model, readonly))
        return made[-1]
    yield make
    for s in made:
        s.close()
