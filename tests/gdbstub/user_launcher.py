"""Run ``pemu-riscv64 -g SPEC PROGRAM`` with the stub attached.

Until the user-mode runtime calls ``pemu.gdbstub.linux_user.attach`` itself (the hook
requested in docs/GDBSTUB.md), this launcher puts the same call in front of the first
guest thread, so the tests exercise exactly the code the hook will run.
"""

import sys

from pemu.gdbstub.linux_user import attach
from pemu.linux_user import main as user_main
from pemu.linux_user import runtime


def _run_thread_with_gdb(spec, original):
    def run(thread):
        attach(thread.process, thread.cpu, spec)
        return original(thread)
    return run


if __name__ == "__main__":
    argv = sys.argv[1:]
    if argv[:1] == ["-g"]:
        spec = argv[1]
        argv = argv[2:]
        runtime.run_thread = _run_thread_with_gdb(spec, runtime.run_thread)
    sys.exit(user_main.main(argv))
