"""Bitmaps wider than 64 bits (interrupt sources, identities) travel in a VMState as
lists of 32-bit words, least significant word first."""

from __future__ import annotations


def to_words(bits: int, count: int) -> list[int]:
    return [(bits >> (32 * i)) & 0xFFFF_FFFF for i in range(count)]


def from_words(words: list[int]) -> int:
    return sum((w & 0xFFFF_FFFF) << (32 * i) for i, w in enumerate(words))


def words_for(nbits: int) -> int:
    """How many words hold bits 0..nbits-1."""
    return (nbits + 31) // 32
