"""The GDB remote stub: ``linux_user.attach`` (user mode), ``riscv_system`` (boards)."""
