"""Instruction decoding described as data (the shape of QEMU's decodetree).

A target writes its encodings as a text table (``.decode``), one pattern per line, and
``build_decoder`` turns it into a decision tree over the fixed bits at import.  See
decodetree.py for the syntax and the rules.
"""

from pemu.target.decode.decodetree import (
    Args,
    DecodeError,
    Decoder,
    FieldSpec,
    Pattern,
    build_decoder,
    parse_table,
)

__all__ = ["Args", "DecodeError", "Decoder", "FieldSpec", "Pattern", "build_decoder",
           "parse_table"]
