"""binfmt_misc: pemu registered with the kernel runs riscv64 programs that are simply exec'd.

The registrations are real (the kernel's binfmt_misc, so root is needed) and use entry
names of their own, removed at the end; the newest entry wins, so a registered
qemu-user-binfmt does not interfere.  Two modes: the pemu-riscv64 script as the
interpreter, and the generated launcher handing programs to a resident server.
"""

from __future__ import annotations

import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from binfmt_helpers import ENV, pemu_binfmt, require_binfmt_misc, served
from binfmt_helpers import register as _register
from conftest import ROOT, run_pemu

from pemu.accel.tcg import tb_cache
from pemu.linux_user import binfmt
from pemu.linux_user.binfmt_launcher import socket_name


# -- the register line --------------------------------------------------------------------
def test_register_line_claims_what_qemu_claims():
    line = binfmt.register_line("x", binfmt.RISCV64, "/usr/bin/pemu-riscv64", "P")
    _, name, kind, offset, magic, mask, interp, flags = line.split(":")
    assert (name, kind, offset, interp, flags) == ("x", "M", "0", "/usr/bin/pemu-riscv64", "P")
    debian = Path("/usr/share/binfmts/qemu-riscv64")
    if debian.exists():  # Debian's qemu-user-binfmt: the same files must match
        fields = dict(line.split(" ", 1) for line in debian.read_text().splitlines() if " " in line)
        assert magic == fields["magic"] and mask == fields["mask"]
    assert bytes.fromhex(magic.replace("\\x", ""))[18:20] == b"\xf3\x00"  # EM_RISCV


@pytest.mark.parametrize("entry, interp, flags, why", [
    ("a:b", "/x", "P", "invalid entry name"),
    ("ok", "relative/path", "P", "absolute path"),
    ("ok", "/x", "PZ", "unknown flag"),
])
def test_register_line_refuses_bad_input(entry, interp, flags, why):
    with pytest.raises(binfmt.BinfmtError, match=why):
        binfmt.register_line(entry, binfmt.RISCV64, interp, flags)


def test_script_interpreter_refuses_open_binary_flags():
    result = pemu_binfmt("--print", "--flags", "OC", "--name", "never-registered")
    assert result.returncode == 1 and "need an ELF interpreter" in result.stderr


# -- environment options, against qemu-riscv64 -----------------------------------------------
@pytest.mark.parametrize("env, command", [
    ({"QEMU_UNAME": "1.2.3-qemu"}, ["uname", "-r"]),
    ({"QEMU_SET_ENV": "FOO=bar,BAZ=2", "QEMU_UNSET_ENV": "HOME"},
     ["sh", "-c", "echo $FOO $BAZ ${HOME-unset}"]),
    ({"QEMU_ARGV0": "echo"}, ["argv0-replaced", "hello"]),
])
def test_qemu_environment_options(busybox, qemu, env, command):


    full = dict(os.environ, **env)
    ours = run_pemu(str(busybox), *command, env=env)
    theirs = subprocess.run([qemu, str(busybox), *command], capture_output=True, env=full,
                            timeout=60)
    assert ours.returncode == theirs.returncode == 0, ours.stderr
    assert ours.stdout == theirs.stdout


def test_pemu_prefix_wins_over_qemu_and_command_line_wins_over_both(busybox):


    env = {"QEMU_UNAME": "1.0-qemu", "PEMU_UNAME": "2.0-pemu"}
    assert run_pemu(str(busybox), "uname", "-r", env=env).stdout == b"2.0-pemu\n"
    assert run_pemu("-r", "3.0-cli", str(busybox), "uname", "-r", env=env).stdout == \
        b"3.0-cli\n"


# -- real registrations ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def binfmt_misc():
    return require_binfmt_misc()


@pytest.fixture(scope="module")
def world(busybox):
    """A directory every user can reach, with programs to exec directly."""
    top = Path(tempfile.mkdtemp(prefix="pemu-binfmt-"))
    top.chmod(0o755)
    shutil.copy(busybox, top / "busybox")
    (top / "busybox").chmod(0o755)
    (top / "echo").symlink_to("busybox")
    yield top
    shutil.rmtree(top, ignore_errors=True)


def _run(argv, executable=None, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(argv, executable=executable, capture_output=True, timeout=120,
                          **kw)


@pytest.fixture
def script_entry(binfmt_misc, world):
    """The Python-script interpreter: a copy of pemu-riscv64-binfmt-P naming this tree."""
    name = f"pemu-test-script-{os.getpid()}"
    interp = world / "interp-P"
    interp.write_text(f"#!{sys.executable}\nimport sys\nsys.path.insert(0, {str(ROOT)!r})\n"
                      "from pemu.linux_user.main import binfmt_main\nsys.exit(binfmt_main())\n")
    interp.chmod(0o755)
    _register(name, "--interpreter", str(interp), "--flags", "P")
    yield name
    pemu_binfmt("--remove", "--name", name)


def test_status_shows_the_kernel_entry(script_entry, world):
    result = pemu_binfmt("--status", "--name", script_entry)
    assert result.returncode == 0, result.stderr
    assert "enabled" in result.stdout and f"interpreter: {world / 'interp-P'}" in result.stdout
    assert "flags: P" in result.stdout


def test_script_interpreter_preserves_argv0(script_entry, world):
    # busybox picks its applet from argv[0]: with P it sees "ls", not the file's name
    result = _run(["ls", "-d", "/", str(world)], executable=str(world / "busybox"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [b"/", str(world).encode()]
    assert _run([str(world / "echo"), "a", "b"]).stdout == b"a b\n"


@pytest.fixture(scope="module")
def server(binfmt_misc, world):
    """pemu-binfmt --serve, and a launcher registered with POCF."""
    name = f"pemu-test-srv-{os.getpid()}"
    with served(name, world / "launcher") as proc:
        yield name, proc


def test_server_entry_flags(server):
    info = binfmt.status(server[0])
    assert info is not None and info["state"] == "enabled" and info["flags:"] == "POCF"


def test_server_runs_programs_with_their_status(server, world):
    bb = str(world / "busybox")
    assert _run([str(world / "echo"), "hello", "binfmt"]).stdout == b"hello binfmt\n"
    assert _run(["ls", "-d", "/"], executable=bb).stdout == b"/\n"  # P: argv[0] kept
    assert _run([bb, "sh", "-c", "exit 7"]).returncode == 7
    assert _run([bb, "sh", "-c", "kill -TERM $$"]).returncode == -signal.SIGTERM
    env_out = _run([bb, "sh", "-c", "echo $PEMU_MARK; pwd"], env={"PEMU_MARK": "m1"},
                   cwd="/tmp")
    assert env_out.stdout == b"m1\n/tmp\n"
    piped = subprocess.run([bb, "tr", "a-z", "A-Z"], input=b"stdin reaches it\n",
                           capture_output=True, timeout=60)
    assert piped.stdout == b"STDIN REACHES IT\n"


def test_programs_inherit_the_callers_other_descriptors(server, world, tmp_path):
    """Beyond stdin, stdout and stderr: what the caller left open for its program (dpkg's
    --status-fd, which apt reads; make's jobserver; configure's >&5) reaches it at the
    same number, as across any execve."""
    bb = str(world / "busybox")
    five, seven = tmp_path / "five", tmp_path / "seven"
    script = f'{bb} sh -c "echo to-five >&5; echo to-seven >&7" 5>{five} 7>>{seven}'
    seven.write_text("kept\n")
    result = _run(["bash", "-c", script])
    assert result.returncode == 0, result.stderr
    assert five.read_text() == "to-five\n"
    assert seven.read_text() == "kept\nto-seven\n"  # opened for append: appended
    # a pipe as dpkg's status descriptor is to apt: the writer's end, read on the other
    piped = _run(["bash", "-c", f"{bb} sh -c 'echo status: done >&3' 3>&1 >/dev/null"])
    assert piped.stdout == b"status: done\n", piped.stderr


def test_server_enters_a_chroot_without_python(server, world, tmp_path):
    root = tmp_path / "root"
    (root / "bin").mkdir(parents=True)
    (root / "work").mkdir()
    shutil.copy(world / "busybox", root / "bin" / "busybox")
    for applet in ("sh", "ls", "cat"):
        (root / "bin" / applet).symlink_to("busybox")
    result = _run([shutil.which("chroot"), str(root), "/bin/sh", "-c",
                   "cd /work && echo made > f && cat f && ls / && umask"],
                  preexec_fn=lambda: os.umask(0o027), env={"PATH": "/bin"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [b"made", b"bin", b"work", b"0027"]
    assert (root / "work" / "f").read_text() == "made\n"


def test_server_runs_execute_only_programs_as_the_caller(server, world):
    try:
        import pwd

        nobody = pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("no user nobody")
    xo = world / "xo"
    xo.mkdir(exist_ok=True)
    xo.chmod(0o755)
    shutil.copy(world / "busybox", xo / "id")
    (xo / "id").chmod(0o711)  # nobody may execute it but not read it: flag O

    def as_nobody():
        os.setgid(nobody.pw_gid)
        os.setuid(nobody.pw_uid)

    result = _run([str(xo / "id"), "-u"], preexec_fn=as_nobody)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{nobody.pw_uid}\n".encode()

    def as_nobody_in_groups():  # groups the server reads through the launcher's pidfd
        os.setgroups([4242, 4343])
        as_nobody()

    result = _run([str(xo / "id"), "-G"], preexec_fn=as_nobody_in_groups)
    assert result.returncode == 0, result.stderr
    assert sorted(map(int, result.stdout.split())) == sorted({nobody.pw_gid, 4242, 4343})


def _block_and_ignore() -> None:
    """A caller's signal state for the program to inherit: standard signals only
    (qemu-riscv64 renumbers the real-time ones it keeps for itself)."""
    signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGUSR1, signal.SIGTERM])
    for sig in (signal.SIGUSR2, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)


def _signal_state(output: bytes) -> dict[str, set[int]]:
    return {line.split(":")[0]: {int(n) for n in line.split(":")[1].split()}
            for line in output.decode().splitlines()}


def test_programs_inherit_the_callers_signal_state(server, world, build, qemu):
    prog = world / "sigstate"
    shutil.copy(build("sigstate", static=True), prog)
    prog.chmod(0o755)
    for caller_setup in (_block_and_ignore, None):  # (and what this test inherited)
        theirs = _run([qemu, str(prog)], preexec_fn=caller_setup)
        if caller_setup is not None:
            state = _signal_state(theirs.stdout)
            assert {10, 15} <= state["blocked"] and {1, 2, 12} <= state["ignored"]
        direct = _run([sys.executable, "-m", "pemu.linux_user.main", str(prog)],
                      preexec_fn=caller_setup, env=ENV)
        assert direct.stdout == theirs.stdout, direct.stderr
        through_binfmt = _run([str(prog)], preexec_fn=caller_setup)
        assert through_binfmt.stdout == theirs.stdout, through_binfmt.stderr


def _default_interrupts() -> None:
    """The test's own ^C and ^\\ may be ignored (a background job): not the program's."""
    for sig in (signal.SIGINT, signal.SIGQUIT):
        signal.signal(sig, signal.SIG_DFL)


def test_launcher_passes_on_interrupts_to_the_program(server, world):
    script = "trap 'echo caught; exit 5' INT; echo ready; while :; do :; done"
    proc = subprocess.Popen([str(world / "busybox"), "sh", "-c", script],
                            stdout=subprocess.PIPE, preexec_fn=_default_interrupts)
    assert proc.stdout.readline() == b"ready\n"
    proc.send_signal(signal.SIGINT)  # what ^C does to the launcher, the shell's child
    assert proc.wait(timeout=60) == 5
    assert proc.stdout.read() == b"caught\n"


def test_launcher_stops_and_continues_with_its_program(server, world):
    """^Z and fg.  The server runs in a session of its own (binfmt_helpers.served), so
    its own process group is orphaned, where the kernel discards SIGTSTP: each program
    must run in a group of its own."""
    server_pid = server[1].pid
    script = "echo ready; sleep 4; echo done"
    proc = subprocess.Popen([str(world / "busybox"), "sh", "-c", script],
                            stdout=subprocess.PIPE)
    assert proc.stdout.readline() == b"ready\n"
    proc.send_signal(signal.SIGTSTP)  # ^Z

    def stopped(pid: int | str) -> bool:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "T"

    def program_stopped() -> bool:  # the server's children: the programs it runs
        children = Path(f"/proc/{server_pid}/task/{server_pid}/children").read_text()
        return any(stopped(pid) for pid in children.split())

    deadline = time.monotonic() + 30
    while not (stopped(proc.pid) and program_stopped()):
        assert time.monotonic() < deadline, "the launcher or its program did not stop"
        time.sleep(0.05)
    time.sleep(5)  # its sleep would have ended meanwhile: the stopped shell says nothing
    assert select.select([proc.stdout], [], [], 0)[0] == []
    proc.send_signal(signal.SIGCONT)  # fg
    assert proc.wait(timeout=60) == 0
    assert proc.stdout.read() == b"done\n"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
@pytest.mark.parametrize("wait", [0.2, 0.0], ids=["running", "just-forked"])
def test_killed_launcher_takes_the_program_with_it(server, world, sig, wait):
    """SIGTERM is passed on to the program (which dies of it); after SIGKILL the server
    sees the launcher's connection close.  'just-forked' signals the moment the server's
    child exists, before it has set up anything (the server's own SIGTERM handler once
    swallowed the signal there)."""
    server_pid = server[1].pid

    def emulated() -> set[str]:  # the server's children: the programs it runs
        return set(Path(f"/proc/{server_pid}/task/{server_pid}/children").read_text().split())

    before = emulated()
    proc = subprocess.Popen([str(world / "busybox"), "sleep", "60"])
    deadline = time.monotonic() + 30
    while not (ours := emulated() - before):
        assert time.monotonic() < deadline, "the program never started"
    time.sleep(wait)
    proc.send_signal(sig)
    assert proc.wait(timeout=30) == -sig
    deadline = time.monotonic() + 10
    while ours & emulated() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not ours & emulated(), "the emulated sleep outlived its launcher"


def test_server_survives_garbage_requests(server, world):
    for junk in (b"", b"\x00" * 3, b"GET / HTTP/1.0\r\n\r\n" * 4, b"\xff" * 4096):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(b"\0" + socket_name("riscv64", server[0]))
        s.sendall(junk)
        s.close()
    assert _run([str(world / "echo"), "still", "serving"]).stdout == b"still serving\n"
    assert server[1].poll() is None


def test_server_children_start_with_the_cached_blocks_installed(server, world):
    """The server installs the translation cache's blocks before it forks a program
    (warm_start.py), and what a program adds is installed before its launcher returns:
    the second run translates nothing."""
    if tb_cache.cache_dir() is None:
        pytest.skip("the translation cache is turned off (PEMU_TB_CACHE)")
    runs = []
    for _ in range(2):
        result = _run([str(world / "echo"), "warm"], env={"QEMU_LOG": "stats"})
        assert result.stdout == b"warm\n", result.stderr
        line = next(x for x in result.stderr.decode().splitlines() if ": stats:" in x)
        runs.append({k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", line)})
    assert runs[1]["translated"] == 0, runs
    # (the first run may have found them installed already: earlier tests ran echo)
    first = runs[0]["translated"] + runs[0].get("cached", 0) + runs[0].get("preinstalled", 0)
    assert runs[1]["preinstalled"] >= 0.9 * first > 100
    assert runs[1]["exits_miss"] < first // 4  # linked a page at a time


def test_launcher_without_server_says_so(binfmt_misc, world):
    name = f"pemu-test-noserver-{os.getpid()}"
    _register(name, "--server", "--launcher", str(world / "lonely-launcher"))
    try:
        result = _run([str(world / "echo"), "x"])
    finally:
        pemu_binfmt("--remove", "--name", name)
    assert result.returncode == 126
    assert b"no pemu server answers" in result.stderr
