"""Helper process for test_crash.py: writes to a qcow2 image through open_drive until
it is killed.  Before each operation it appends the byte range it is about to touch
to ``ops.log``; after each flush it saves the image's expected content to
``state.bin`` and starts a new log.  Ranges not in the log must therefore hold the
saved content after any crash."""

from __future__ import annotations

import os
import random
import sys

from pemu.block import open_drive


def main() -> None:
    img, workdir, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])
    r = random.Random(seed)
    state_path = os.path.join(workdir, "state.bin")
    be = open_drive({"file": img, "format": "qcow2", "discard": "unmap"})
    size = be.size
    # unflushed writes of the killed predecessor may or may not have landed: the
    # image as it reads now is the baseline
    expect = bytearray(be.pread(0, size))
    with open(state_path + ".tmp", "wb") as f:
        f.write(expect)
    os.rename(state_path + ".tmp", state_path)
    log = os.open(os.path.join(workdir, "ops.log"), os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    print("ready", flush=True)
    n = 0
    while True:
        n += 1
        off = r.randrange(0, size)
        length = min(size - off, r.choice([1, 512, 4096, 65536, 300000]))
        kind = r.randrange(10)
        os.write(log, f"{off} {length}\n".encode())
        if kind == 0:
            be.write_zeroes(off, length, may_unmap=True)
            expect[off:off + length] = bytes(length)
        elif kind == 1:
            # discard may or may not zero partial clusters: re-read what it left
            be.discard(off, length)
            expect[off:off + length] = be.pread(off, length)
        else:
            data = r.randbytes(length)
            be.pwrite(off, data)
            expect[off:off + length] = data
        if n % 8 == 0:
            be.flush()
            tmp = state_path + ".tmp"
            with open(tmp, "wb") as f:
                f.write(expect)
            os.rename(tmp, state_path)
            os.close(log)
            log = os.open(os.path.join(workdir, "ops.log"),
                          os.O_WRONLY | os.O_TRUNC | os.O_CREAT)


if __name__ == "__main__":
    main()
