"""PMP address matching and page-walk rules, checked directly against the spec."""

from __future__ import annotations

import pytest

from pemu.target.riscv.exceptions import LOAD_PAGE_FAULT, STORE_PAGE_FAULT, RiscvTrap
from pemu.target.riscv.mmu import (
    ACCESS_READ,
    ACCESS_WRITE,
    PERM_R,
    PERM_W,
    PMP,
    PRV_M,
    PRV_S,
    PRV_U,
    walk,
)


def test_pmp_napot_tor_and_lock():
    pmp = PMP()
    # entry 0: NAPOT 0x80000000 + 512 KiB, no permissions (OpenSBI's firmware region)
    pmp.write_addr(0, (0x8000_0000 >> 2) | ((0x8_0000 >> 3) - 1))
    # entry 1: TOR up to 0x90000000 from entry 0's address register, RW
    pmp.write_addr(1, 0x9000_0000 >> 2)
    pmp.write_cfg(0, (3 << 3) | ((1 << 3 | 3) << 8))
    assert not pmp.allows(0x8000_1000, 8, PERM_R, PRV_S)
    assert pmp.allows(0x8000_1000, 8, PERM_R, PRV_M)  # unlocked: M ignores it
    assert not pmp.allows(0x8007_fffc, 8, PERM_R, PRV_S)  # straddles the edge
    assert pmp.allows(0x8010_0000, 8, PERM_W, PRV_U)
    assert not pmp.allows(0x9000_0000, 4, PERM_R, PRV_S)  # no entry matches
    pmp.write_cfg(0, (3 << 3) | 0x80 | ((1 << 3 | 3) << 8))  # lock entry 0
    assert not pmp.allows(0x8000_1000, 8, PERM_R, PRV_M)
    pmp.write_addr(0, 0)  # locked: ignored
    assert pmp.read_addr(0) == (0x8000_0000 >> 2) | ((0x8_0000 >> 3) - 1)


def _tables(entries: dict[int, int]):
    mem: dict[int, int] = dict(entries)
    return (lambda a: mem.get(a, 0)), (lambda a, v: mem.__setitem__(a, v)), mem


def test_sv39_walk_sets_a_and_d_and_checks_permissions():
    root, leaf_table, page = 0x8000_0000, 0x8000_1000, 0x8020_0000
    ptes = {root: (leaf_table >> 12) << 10 | 1,  # VA 0 -> next level
            leaf_table: 0}
    # level-1 table entry 0 -> level-0 table at leaf_table+0x1000
    l0 = leaf_table + 0x1000
    ptes[leaf_table] = (l0 >> 12) << 10 | 1
    ptes[l0 + 8 * 5] = (page >> 12) << 10 | 0b0111  # VA 0x5000: V R W, A/D clear
    load, store, mem = _tables(ptes)
    satp = (8 << 60) | (root >> 12)
    t = walk(satp, 0x5123, ACCESS_READ, PRV_S, False, False, load, store, lambda a: True)
    assert t.paddr == page + 0x123
    assert t.perms & PERM_R and not t.perms & PERM_W  # D clear: writes must come back
    assert mem[l0 + 8 * 5] & 0x40  # A set
    t = walk(satp, 0x5000, ACCESS_WRITE, PRV_S, False, False, load, store, lambda a: True)
    assert mem[l0 + 8 * 5] & 0x80 and t.perms & PERM_W  # D set by the write
    with pytest.raises(RiscvTrap) as e:  # not a user page
        walk(satp, 0x5000, ACCESS_READ, PRV_U, False, False, load, store, lambda a: True)
    assert e.value.cause == LOAD_PAGE_FAULT
    with pytest.raises(RiscvTrap) as e:  # unmapped
        walk(satp, 0x6000, ACCESS_WRITE, PRV_S, False, False, load, store, lambda a: True)
    assert e.value.cause == STORE_PAGE_FAULT and e.value.tval == 0x6000
