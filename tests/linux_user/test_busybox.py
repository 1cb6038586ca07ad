"""The static riscv64 busybox under pemu must agree with the host's own tools."""

from __future__ import annotations

import gzip
import hashlib
import random
import subprocess
import tarfile

import pytest
from conftest import run_pemu, run_qemu

# every test here runs on both TCG backends
pytestmark = pytest.mark.usefixtures("tcg_backend")


@pytest.fixture(scope="module")
def data_file(tmp_path_factory):
    # 1 MiB of random bytes: a real workload, still quick enough for the python backend
    path = tmp_path_factory.mktemp("bb") / "data.bin"
    path.write_bytes(random.Random(1234).randbytes(1024 * 1024))
    return path


def bb(busybox, *args, **kw):
    result = run_pemu(str(busybox), *args, **kw)
    assert result.returncode == 0, result.stderr.decode()
    return result


@pytest.mark.slow
def test_sha256sum(busybox, data_file):
    out = bb(busybox, "sha256sum", str(data_file)).stdout.decode()
    assert out == f"{hashlib.sha256(data_file.read_bytes()).hexdigest()}  {data_file}\n"


def test_md5sum(busybox, data_file):
    out = bb(busybox, "md5sum", str(data_file)).stdout.decode()
    assert out == f"{hashlib.md5(data_file.read_bytes()).hexdigest()}  {data_file}\n"


@pytest.mark.slow
def test_gzip_round_trip(busybox, tmp_path):
    words = [f"line {i} {'abcdefgh' * (i % 7)}\n" for i in range(3000)]
    text = "".join(words).encode()
    src = tmp_path / "text.txt"
    src.write_bytes(text)
    bb(busybox, "gzip", "-k", str(src))
    assert gzip.decompress((tmp_path / "text.txt.gz").read_bytes()) == text
    host_gz = tmp_path / "host.gz"
    host_gz.write_bytes(gzip.compress(text))
    out = bb(busybox, "gunzip", "-c", str(host_gz)).stdout
    assert out == text


def test_sort_and_awk(busybox, tmp_path):
    lines = [f"{(i * 7919) % 1000} item{i}" for i in range(400)]
    src = tmp_path / "nums.txt"
    src.write_text("\n".join(lines) + "\n")
    out = bb(busybox, "sort", "-n", str(src)).stdout.decode()
    host = subprocess.run(["sort", "-n", str(src)], capture_output=True, env={"LC_ALL": "C"})
    assert out == host.stdout.decode()
    total = bb(busybox, "awk", "{s += $1} END {print s, NR}", str(src)).stdout.decode()
    assert total.split() == [str(sum((i * 7919) % 1000 for i in range(400))), "400"]


def test_shell_pipes_subshells_substitution(busybox, tmp_path):
    script = (
        "echo one two three | tr ' ' '\\n' | sort -r | head -n 2;"
        "x=$(echo inner | wc -c); echo \"count=$x\";"
        "(cd / && pwd); pwd;"
        "for i in 1 2 3; do echo -n $i; done; echo;"
        "false || echo recovered; exit 3"
    )
    result = run_pemu(str(busybox), "sh", "-c", script, cwd=tmp_path)
    assert result.returncode == 3, result.stderr.decode()
    assert result.stdout.decode() == f"two\nthree\ncount=6\n/\n{tmp_path}\n123\nrecovered\n"


def test_find_and_ls(busybox, tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    for name in ("a/x.txt", "a/b/y.txt", "z.log"):
        (tmp_path / name).write_text(name * 10)
    out = bb(busybox, "find", ".", "-name", "*.txt", cwd=tmp_path).stdout.decode()
    assert sorted(out.split()) == ["./a/b/y.txt", "./a/x.txt"]
    listing = bb(busybox, "ls", "-ln", str(tmp_path / "a")).stdout.decode().splitlines()
    mine = {line.split()[-1]: line.split() for line in listing[1:]}
    st = (tmp_path / "a" / "x.txt").stat()
    assert mine["x.txt"][0] == "-rw-r--r--" or mine["x.txt"][0].startswith("-rw")
    assert mine["x.txt"][4] == str(st.st_size)
    assert mine["b"][0].startswith("d")


def test_tar_create_and_extract(busybox, tmp_path):
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "one.txt").write_text("first file\n")
    (src / "sub" / "two.bin").write_bytes(bytes(range(256)) * 20)
    bb(busybox, "tar", "cf", "out.tar", "src", cwd=tmp_path)
    with tarfile.open(tmp_path / "out.tar") as tar:
        names = sorted(tar.getnames())
        assert names == ["src", "src/one.txt", "src/sub", "src/sub/two.bin"]
        assert tar.extractfile("src/sub/two.bin").read() == bytes(range(256)) * 20
    dest = tmp_path / "dest"
    dest.mkdir()
    bb(busybox, "tar", "xf", str(tmp_path / "out.tar"), cwd=dest)
    assert (dest / "src" / "one.txt").read_text() == "first file\n"
    assert (dest / "src" / "sub" / "two.bin").read_bytes() == bytes(range(256)) * 20


@pytest.mark.parametrize("closes", ["2>&-", "1>&- 2>&-"])
def test_exit_status_kept_when_the_program_closed_the_log_descriptor(busybox, qemu, closes):
    """GNU programs close stdout and stderr as they exit; ``-d stats`` (and ``-strace``)
    print to that stderr afterwards: the record is lost, the exit status must not be
    (it was 1, or 126 under the binfmt server)."""
    script = f"echo before; exec {closes}; echo after; exit 3"
    expected = run_qemu(str(busybox), "sh", "-c", script)
    assert expected.returncode == 3
    result = run_pemu("-d", "stats", "-strace", str(busybox), "sh", "-c", script)
    assert (result.returncode, result.stdout) == (3, expected.stdout)
    assert b"Traceback" not in result.stderr
