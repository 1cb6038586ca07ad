"""Suite-wide ordering and, under pytest-xdist, how the tests are shared out.

Full-guest boots (the ``slow`` modules) take minutes each and most of the suite's time.
They run first, so that with ``-n 2`` the two workers end together instead of one of
them starting a Debian boot while the other has nothing left.  Modules move as a whole
(a module-scoped fixture boots its guest once), and the modules of one package keep
their order (tests/system/services shares one boot across its modules).
"""

from __future__ import annotations

import pytest

try:
    from xdist.scheduler import LoadFileScheduling
except ImportError:  # xdist is optional: without it the suite runs in one process
    LoadFileScheduling = None

# Packages whose modules share one package-scoped guest: one xdist work unit each.
SHARED_BOOT_PACKAGES = ("tests/system/services/",)

# Modules that register pemu in the kernel's binfmt_misc for riscv64.  The kernel has one
# list of entries for the whole host and hands a program to the newest entry whose magic
# matches, so two workers' registrations would take each other's programs: these modules
# are one work unit, run one after the other on one worker.
BINFMT_MODULES = ("tests/linux_user/test_binfmt.py", "tests/linux_user/test_debian_chroot.py")


def _module_path(item: pytest.Item) -> str:
    return item.nodeid.split("::", 1)[0]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    slow_modules = {_module_path(i) for i in items if i.get_closest_marker("slow")}
    # a stable sort: within each group, collection order (so modules stay together)
    items.sort(key=lambda i: _module_path(i) not in slow_modules)


if LoadFileScheduling is not None:
    class _SharedBootScheduling(LoadFileScheduling):
        """LoadFileScheduling, except that a shared-boot package is one work unit, and
        so are the binfmt_misc modules together."""

        def _split_scope(self, nodeid: str) -> str:
            path = nodeid.split("::", 1)[0]
            if path in BINFMT_MODULES:
                return "binfmt_misc"
            for package in SHARED_BOOT_PACKAGES:
                if path.startswith(package):
                    return package
            return path

    def pytest_xdist_make_scheduler(config, log):
        return _SharedBootScheduling(config, log)
