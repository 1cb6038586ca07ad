"""Two pemu versions sharing one translation-cache file: each drops the other's tables
once they are old (tb_cache.KEEP_VERSIONS), and that must never make a save fail."""

from __future__ import annotations

import sqlite3

from pemu.accel.tcg import tb_cache


def test_a_table_dropped_by_another_version_mid_save_does_not_lose_the_save(
        tmp_path, monkeypatch, capsys):
    cache = tb_cache.TranslationCache(tmp_path, "this version")
    other = sqlite3.connect(tmp_path / tb_cache.DB_NAME, timeout=0)
    real_create = tb_cache.TranslationCache._create_table

    def create_then_other_version_drops(self, db):
        # the moment another process's _drop_old_versions would hurt most: our table
        # exists, our blocks are not in it yet
        real_create(self, db)
        try:
            other.execute(f"DROP TABLE IF EXISTS {self.table}")
            other.commit()
        except sqlite3.OperationalError:  # locked out by our write transaction
            pass

    monkeypatch.setattr(tb_cache.TranslationCache, "_create_table",
                        create_then_other_version_drops)
    key = tb_cache.block_key(0, 0x1000, b"d" * 16)
    cache.write({key: (b"\x90", 0, 0, (), (), (), 1)})
    monkeypatch.setattr(tb_cache.TranslationCache, "_create_table", real_create)
    assert "not saved" not in capsys.readouterr().err
    stored = other.execute(f"SELECT count(*) FROM {cache.table}").fetchone()
    assert stored == (1,)
