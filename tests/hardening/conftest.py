from tests.block.conftest import qemu_img  # noqa: F401 - runs qemu-img (skips without it)
from tests.gdbstub.conftest import baremetal  # noqa: F401 - a bare-metal riscv64 ELF
