from tests.gdbstub.conftest import baremetal  # noqa: F401 - a bare-metal riscv64 ELF
