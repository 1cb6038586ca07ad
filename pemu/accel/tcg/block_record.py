"""Recording the blocks a run translates, for bench/bench_translate.py.

``PEMU_RECORD_BLOCKS=FILE`` makes every translation append one record to FILE: the
block's pc and flags, the frontend's arguments, and every code fetch the frontend made
(address, size, value).  Replaying the fetches translates exactly the same blocks
again in another process, with no guest, kernel or disk image: the translation cost
of a real workload (a boot, a shell pipeline) measured on its own.

Records are ``marshal``-ed tuples written with one ``write`` each on an ``O_APPEND``
descriptor, so that the processes of one run (a shell's children) may share a file.
"""

from __future__ import annotations

import marshal
import os
from collections.abc import Iterator

from pemu.accel.tcg.target import Fetch

RECORD_ENV = "PEMU_RECORD_BLOCKS"
RECORD_FORMAT = 1


class BlockRecorder:
    """Appends one record per translated block to a file."""

    def __init__(self, path: str, target_name: str, target_config: str) -> None:
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self.target = (target_name, target_config)

    def recording(self, fetch: Fetch) -> tuple[Fetch, list[tuple[int, int, int]]]:
        """``fetch`` and the list it appends every successful fetch to."""
        seen: list[tuple[int, int, int]] = []

        def recorded(addr: int, size: int) -> int:
            value = fetch(addr, size)
            seen.append((addr, size, value))
            return value
        return recorded, seen

    def write(self, pc: int, flags: int, max_insns: int, inline_atomics: bool,
              options: dict[str, object], fetches: list[tuple[int, int, int]]) -> None:
        # break_pcs (the debugger's) are sets of the moment: such blocks are not kept
        if "break_pcs" in options:
            return
        record = (RECORD_FORMAT, self.target, pc, flags, max_insns, inline_atomics,
                  dict(options), fetches)
        os.write(self.fd, marshal.dumps(record))


def recorder_from_env(target_name: str, target_config: str) -> BlockRecorder | None:
    path = os.environ.get(RECORD_ENV)
    return BlockRecorder(path, target_name, target_config) if path else None


def read_records(path: str) -> Iterator[tuple]:
    """The records of a file, in the order written (ValueError: not such a file)."""
    with open(path, "rb") as f:
        while True:
            try:
                record = marshal.load(f)
            except EOFError:
                return
            except (ValueError, TypeError) as e:
                raise ValueError(f"{path}: not a block recording ({e})") from None
            yield check_record(record, path)


def check_record(record: object, path: str) -> tuple:
    if not isinstance(record, tuple) or len(record) != 8 or record[0] != RECORD_FORMAT:
        raise ValueError(f"{path}: not a block recording of format {RECORD_FORMAT}")
    return record


__all__ = ["RECORD_ENV", "BlockRecorder", "check_record", "read_records", "recorder_from_env"]
