"""A decoder generated from a table of instruction patterns.

The table is text, one item per line (``#`` starts a comment)::

    %name   POS:LEN POS:sLEN ... [<<N] [+N]
                                     a field made of pieces, the first the most significant;
                                     ``s`` marks it signed (sign-extended from its top bit);
                                     ``<<N`` scales it (immediates whose low bits are
                                     implied zeros), ``+N`` adds to it (RVC's x8..x15)
    @fmt    BITS... [%field] [name=value]
                                     a format: fields shared by several patterns
    NAME    BITS... [@fmt] [%field] [name=value]
                                     a pattern; the target's ``trans_NAME(ctx, a)`` runs it
    {                                an overlap group: patterns up to ``}`` may match the
    }                                same word; they are tried in table order

BITS are written from the most significant bit down and add up to the table's width:
``0``/``1`` are fixed bits, ``.`` a bit this line leaves alone, ``name:N`` (``name:sN``
signed) a field of N bits.  A name used twice in one line is one field, its first piece
the most significant.  ``name=value`` gives the handler a constant (``size=3``), and
``name=%field`` a named field under another name (one table's patterns can then hand
the same arguments to the same handler from different bits: RVC's ``rs1=%rd``).

The decoder is generated code where it runs for every instruction: the fields of a
pattern are extracted by a function generated for it (one expression per field), a
new word's candidate patterns are found by its opcode and function fields in a memo,
and a word's decoding (each matching pattern's handler and fields) is memoised by the
word, ``Decoder.words`` (see ``Decoder``).  Handlers must treat their ``a`` as
read-only: one object serves every translation of the word.

Rules checked when the table is built, so a mistake is an error at import:
  * every line adds up to the width, and a pattern's fixed bits and fields do not collide
    with its format's;
  * two patterns that can match the same word must be in the same overlap group;
  * every pattern has its handler (``trans_NAME``).

A handler returns ``False`` to say the word is unallocated after all (a reserved value
of a field); in a group, the next matching pattern is tried; otherwise the decoder
reports that nothing took the word, and the target raises its undefined-instruction
exception.  The decision tree switches on the bits every remaining pattern fixes, then
on the bit most of them fix, and ends in a short list checked in table order.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

_BITS = re.compile(r"^[01.\-]+$")
_INLINE_FIELD = re.compile(r"^([A-Za-z_]\w*):(s?)(\d+)$")
_CONST = re.compile(r"^([A-Za-z_]\w*)=(-?(?:0x[0-9a-fA-F]+|\d+))$")
_PIECE = re.compile(r"^(\d+):(s?)(\d+)$")
_SHIFT = re.compile(r"^<<(\d+)$")
_OFFSET = re.compile(r"^\+(\d+)$")
_ALIAS = re.compile(r"^([A-Za-z_]\w*)=%([A-Za-z_]\w*)$")
_NAME = re.compile(r"^[A-Za-z_]\w*$")


class DecodeError(ValueError):
    """A malformed decode table (with the line it came from)."""


@dataclass(frozen=True)
class FieldSpec:
    """A field: pieces (position of the lowest bit, length), most significant first;
    the value put together is then shifted left by ``shift`` and ``offset`` added."""

    name: str
    pieces: tuple[tuple[int, int], ...]
    signed: bool = False
    shift: int = 0
    offset: int = 0

    @property
    def width(self) -> int:
        return sum(length for _, length in self.pieces)

    @property
    def mask(self) -> int:
        m = 0
        for pos, length in self.pieces:
            m |= ((1 << length) - 1) << pos
        return m

    def extract(self, insn: int) -> int:
        v = 0
        for pos, length in self.pieces:
            v = (v << length) | ((insn >> pos) & ((1 << length) - 1))
        if self.signed and v >> (self.width - 1):
            v -= 1 << self.width
        return (v << self.shift) + self.offset

    def expression(self) -> str:
        """``extract`` as a Python expression of ``insn`` (the generated decoder's)."""
        terms, at = [], 0
        for pos, length in reversed(self.pieces):
            mask = (1 << length) - 1
            term = f"(insn >> {pos} & {mask})" if pos else f"(insn & {mask})"
            terms.append(f"{term} << {at}" if at else term)
            at += length
        expr = " | ".join(reversed(terms))
        if self.signed:
            top = 1 << (self.width - 1)
            expr = f"(({expr}) ^ {top}) - {top}"
        if self.shift:
            expr = f"({expr}) << {self.shift}"
        if self.offset:
            expr = f"({expr}) + {self.offset}"
        return expr

    def insert(self, value: int) -> int:
        """The bits of an instruction that hold ``value`` in this field (the inverse of
        ``extract``); ValueError when the field cannot hold it."""
        v, width = value - self.offset, self.width
        low = v & ((1 << self.shift) - 1)
        v >>= self.shift
        lo, hi = (-(1 << (width - 1)), 1 << (width - 1)) if self.signed else (0, 1 << width)
        if low or not lo <= v < hi:
            raise ValueError(f"field {self.name} cannot hold {value}")
        bits, left = 0, width
        for pos, length in self.pieces:
            left -= length
            bits |= ((v >> left) & ((1 << length) - 1)) << pos
        return bits


class Args:
    """A decoded instruction's fields, as attributes (``a.rd``, ``a.imm``)."""

    def __init__(self, values: dict[str, int]) -> None:
        self.__dict__.update(values)

    def fields(self) -> dict[str, int]:
        """Name -> value (the decoder's Args keep theirs in slots, see ``_runner``)."""
        names = getattr(type(self), "__slots__", ())
        return {**{name: getattr(self, name) for name in names}, **self.__dict__}

    def __repr__(self) -> str:
        return "Args(" + ", ".join(f"{k}={v}" for k, v in self.fields().items()) + ")"


@dataclass
class Pattern:
    """One instruction pattern: ``(insn & mask) == bits`` selects it."""

    name: str
    mask: int
    bits: int
    fields: tuple[FieldSpec, ...]
    consts: tuple[tuple[str, int], ...] = ()
    group: int | None = None  # overlap group number, None outside any group
    line: int = 0

    def matches(self, insn: int) -> bool:
        return insn & self.mask == self.bits

    def values(self, insn: int) -> dict[str, int]:
        """The fields of ``insn`` (which matches) by name."""
        values = {f.name: f.extract(insn) for f in self.fields}
        values.update(self.consts)
        return values

    def args(self, insn: int) -> Args:
        return Args(self.values(insn))

    def encode(self, values: dict[str, int]) -> int:
        """The instruction of this pattern with these field values (an assembler's
        view of the table); ValueError if no word of the pattern has them all."""
        word = self.bits
        for f in self.fields:
            if f.name not in values:
                raise ValueError(f"{self.name}: no value for field {f.name}")
            word |= f.insert(values[f.name])
        if self.values(word) != values:  # a constant differs, an unknown name,
            raise ValueError(f"{self.name} cannot encode {values}")  # or overlapping fields
        return word


_new = object.__new__


@dataclass
class _Line:
    """What a format or pattern line said, before formats are merged in."""

    mask: int = 0
    bits: int = 0
    inline: dict[str, list[tuple[int, int]]] = field(default_factory=dict)
    signed: set[str] = field(default_factory=set)
    refs: list[str] = field(default_factory=list)  # %field names
    aliases: dict[str, str] = field(default_factory=dict)  # name=%field
    fmt: str | None = None
    consts: dict[str, int] = field(default_factory=dict)


def _parse_line(tokens: Sequence[str], width: int, where: str) -> _Line:
    out = _Line()
    pos = width  # bits still to place, counting down from the top
    for tok in tokens:
        m_field = _INLINE_FIELD.match(tok)
        if pos > 0 and (_BITS.match(tok) or m_field):
            if m_field:
                name, sign, n = m_field.group(1), m_field.group(2), int(m_field.group(3))
                pos -= n
                if pos < 0 or n == 0:
                    raise DecodeError(f"{where}: field {tok} does not fit the width {width}")
                out.inline.setdefault(name, []).append((pos, n))
                if sign:
                    out.signed.add(name)
                continue
            for ch in tok:
                pos -= 1
                if pos < 0:
                    raise DecodeError(f"{where}: more than {width} bits")
                if ch in "01":
                    out.mask |= 1 << pos
                    out.bits |= int(ch) << pos
            continue
        if pos > 0:
            raise DecodeError(f"{where}: {width - pos} bits given, {width} needed "
                              f"(at {tok!r})")
        if tok.startswith("%"):
            out.refs.append(tok[1:])
        elif m_alias := _ALIAS.match(tok):
            out.aliases[m_alias.group(1)] = m_alias.group(2)
        elif tok.startswith("@"):
            if out.fmt is not None:
                raise DecodeError(f"{where}: two formats")
            out.fmt = tok[1:]
        elif m_const := _CONST.match(tok):
            out.consts[m_const.group(1)] = int(m_const.group(2), 0)
        else:
            raise DecodeError(f"{where}: cannot read {tok!r}")
    if pos != 0:
        raise DecodeError(f"{where}: {width - pos} bits given, {width} needed")
    return out


def _parse_field(name: str, tokens: Sequence[str], where: str) -> FieldSpec:
    pieces = []
    signed = False
    shift = offset = 0
    for i, tok in enumerate(tokens):
        m = _PIECE.match(tok)
        if m_shift := _SHIFT.match(tok):
            shift = int(m_shift.group(1))
            continue
        if m_offset := _OFFSET.match(tok):
            offset = int(m_offset.group(1))
            continue
        if shift or offset:
            raise DecodeError(f"{where}: pieces come before <<N and +N")
        if not m:
            raise DecodeError(f"{where}: field piece {tok!r} is not POS:LEN")
        if m.group(2):
            if i:
                raise DecodeError(f"{where}: only the first piece carries the sign")
            signed = True
        pieces.append((int(m.group(1)), int(m.group(3))))
    if not pieces:
        raise DecodeError(f"{where}: a field needs pieces")
    return FieldSpec(name, tuple(pieces), signed, shift, offset)


def _merge(line: _Line, fmt: _Line | None, named: dict[str, FieldSpec], where: str
           ) -> tuple[int, int, tuple[FieldSpec, ...], dict[str, int]]:
    mask, bits = line.mask, line.bits
    fields: dict[str, FieldSpec] = {}
    consts: dict[str, int] = {}
    for part in ([fmt] if fmt else []) + [line]:
        if part is not line:
            if (part.bits ^ bits) & part.mask & mask:
                raise DecodeError(f"{where}: fixed bits differ from its format's")
            mask, bits = mask | part.mask, bits | part.bits
        for name, pieces in part.inline.items():
            fields[name] = FieldSpec(name, tuple(pieces), name in part.signed)
        for ref in part.refs:
            if ref not in named:
                raise DecodeError(f"{where}: no field %{ref}")
            fields[ref] = named[ref]
        for name, ref in part.aliases.items():
            if ref not in named:
                raise DecodeError(f"{where}: no field %{ref}")
            fields[name] = dataclasses.replace(named[ref], name=name)
        consts.update(part.consts)
    for f in fields.values():
        if line.mask & f.mask and f.name not in line.inline:
            raise DecodeError(f"{where}: fixed bits overlap field {f.name}")
        if f.name in consts:
            raise DecodeError(f"{where}: {f.name} is both a field and a constant")
    return mask, bits, tuple(fields.values()), consts


def parse_table(text: str, width: int = 32, source: str = "<decode>") -> list[Pattern]:
    """The patterns of a decode table, in table order, checked (see the module doc)."""
    named: dict[str, FieldSpec] = {}
    formats: dict[str, _Line] = {}
    patterns: list[Pattern] = []
    group: int | None = None
    n_groups = 0
    for lineno, raw in enumerate(text.splitlines(), 1):
        where = f"{source}:{lineno}"
        tokens = raw.split("#", 1)[0].split()
        if not tokens:
            continue
        head, rest = tokens[0], tokens[1:]
        if head == "{":
            if group is not None or rest:
                raise DecodeError(f"{where}: groups do not nest")
            group, n_groups = n_groups, n_groups + 1
        elif head == "}":
            if group is None or rest:
                raise DecodeError(f"{where}: '}}' without '{{'")
            group = None
        elif head.startswith("%"):
            named[head[1:]] = _parse_field(head[1:], rest, where)
        elif head.startswith("@"):
            formats[head[1:]] = _parse_line(rest, width, where)
        elif _NAME.match(head):
            line = _parse_line(rest, width, where)
            if line.fmt is not None and line.fmt not in formats:
                raise DecodeError(f"{where}: no format @{line.fmt}")
            fmt = formats[line.fmt] if line.fmt else None
            mask, bits, fields, consts = _merge(line, fmt, named, where)
            patterns.append(Pattern(head, mask, bits, fields, tuple(consts.items()),
                                    group, lineno))
        else:
            raise DecodeError(f"{where}: cannot read {head!r}")
    if group is not None:
        raise DecodeError(f"{source}: group not closed")
    check_overlaps(patterns, source)
    return patterns


def overlap(a: Pattern, b: Pattern) -> bool:
    """Some word matches both."""
    return not (a.bits ^ b.bits) & a.mask & b.mask


def check_overlaps(patterns: Sequence[Pattern], source: str = "<decode>") -> None:
    for i, a in enumerate(patterns):
        for b in patterns[i + 1:]:
            if overlap(a, b) and (a.group is None or a.group != b.group):
                raise DecodeError(f"{source}: patterns {a.name} (line {a.line}) and "
                                  f"{b.name} (line {b.line}) overlap outside a group")


# -- the decision tree ------------------------------------------------------------------

Lookup = Callable[[int], Sequence[Pattern]]
_NONE: tuple[Pattern, ...] = ()


def _build(patterns: list[Pattern], tested: int) -> Lookup:
    if not patterns:
        return lambda insn: _NONE
    common = tested ^ -1
    for p in patterns:
        common &= p.mask
    if common:
        parts: dict[int, list[Pattern]] = {}
        for p in patterns:
            parts.setdefault(p.bits & common, []).append(p)
        children = {key: _build(sub, tested | common) for key, sub in parts.items()}
        get = children.get
        empty = _build([], 0)

        def switch(insn: int) -> Sequence[Pattern]:
            return get(insn & common, empty)(insn)
        return switch
    # no bit fixed by all: split on the bit most of them fix (free ones go both ways)
    counts: dict[int, int] = {}
    for p in patterns:
        free = p.mask & ~tested
        while free:
            bit = free & -free
            counts[bit] = counts.get(bit, 0) + 1
            free ^= bit
    if len(patterns) == 1:
        only, mask, bits = tuple(patterns), patterns[0].mask, patterns[0].bits
        return lambda insn: only if insn & mask == bits else _NONE
    if not counts:
        leaf = tuple(patterns)
        return lambda insn: [p for p in leaf if insn & p.mask == p.bits]
    bit = max(counts, key=lambda b: (counts[b], b))
    zero = _build([p for p in patterns if not p.bits & bit], tested | bit)
    one = _build([p for p in patterns if p.bits & bit or not p.mask & bit], tested | bit)

    def split(insn: int) -> Sequence[Pattern]:
        return one(insn) if insn & bit else zero(insn)
    return split


Handler = Callable[[object, Args], object]
MAX_KEY_BITS = 20  # the memo of candidates holds at most 2**20 keys
MAX_WORDS = 1 << 16  # the memo of decoded words: emptied when it reaches this size
Decoded = tuple[tuple[Handler, Args], ...]
_Candidate = tuple[int, int, "Handler | None", Callable[[int], Args]]


def _key_mask(patterns: Sequence[Pattern]) -> int:
    """The bits most patterns fix (opcode and function fields): a new word's candidate
    patterns are looked up by them."""
    mask = 0
    for bit in range(max((p.mask.bit_length() for p in patterns), default=0)):
        if 2 * sum(1 for p in patterns if p.mask >> bit & 1) >= len(patterns):
            mask |= 1 << bit
    while mask.bit_count() > MAX_KEY_BITS:
        mask &= mask - 1  # drop the lowest
    return mask


def _extractor(pattern: Pattern) -> Callable[[int], Args]:
    """``fields(insn)``: the fields of ``insn`` (which matches the pattern), extracted
    by code generated for the pattern (one expression per field, no loops) into an Args
    of a class of its own whose fields are slots (faster to make and to read than a
    dict)."""
    names = [f.name for f in pattern.fields] + [name for name, _ in pattern.consts]
    fields = type(f"Args_{pattern.name}", (Args,), {"__slots__": tuple(names)})
    lines = [f"    a.{f.name} = {f.expression()}\n" for f in pattern.fields]
    lines += [f"    a.{name} = {value}\n" for name, value in pattern.consts]
    source = "def fields(insn):\n    a = _new(Fields)\n" + "".join(lines) + "    return a\n"
    namespace: dict[str, object] = {"_new": _new, "Fields": fields}
    exec(compile(source, f"<decode pattern {pattern.name}>", "exec"), namespace)
    return namespace["fields"]  # type: ignore[return-value]


class Decoder:
    """Decodes words of a table; ``decoder(ctx, insn)`` runs the handler that takes it."""

    def __init__(self, patterns: Iterable[Pattern], handlers: object | None = None) -> None:
        self.patterns = list(patterns)
        self._lookup = _build(self.patterns, 0)
        self.handlers: dict[str, Handler] = {}
        if handlers is not None:
            missing = [p.name for p in self.patterns
                       if not callable(getattr(handlers, f"trans_{p.name}", None))]
            if missing:
                raise DecodeError(f"no trans_ handler for: {', '.join(missing)}")
            self.handlers = {p.name: getattr(handlers, f"trans_{p.name}")
                             for p in self.patterns}
        # Translation runs __call__ for every instruction, and code repeats its words
        # (a boot translates ~200k instructions of ~50k distinct words): a word's
        # decoding, every matching pattern's handler with the word's fields, is
        # memoised by the whole word.  It depends on nothing but the word (whether a
        # handler takes it, which depends on the hart, is asked at every call), so the
        # memo is never stale; handlers treat the shared fields as read-only.
        self.words: dict[int, Decoded] = {}
        # A new word's candidates are found by its key bits in a second memo (few
        # distinct keys: the opcode and function fields of the instructions code uses),
        # and each candidate is checked for no more than the pattern's other fixed bits.
        self._key = _key_mask(self.patterns)
        # (generated when a word first needs them: a program uses few of the patterns)
        self._extractors: list[Callable[[int], Args] | None] = [None] * len(self.patterns)
        self._memo: dict[int, tuple[_Candidate, ...]] = {}
        # a new key's patterns are among those of its major opcode (the bits every
        # pattern fixes): a short list to filter, not the whole table
        self._root = self._key
        for p in self.patterns:
            self._root &= p.mask
        self._by_root: dict[int, list[int]] = {}
        for i, p in enumerate(self.patterns):
            self._by_root.setdefault(p.bits & self._root, []).append(i)

    def candidates(self, insn: int) -> Sequence[Pattern]:
        """The patterns matching ``insn``, in table order."""
        return self._lookup(insn)

    def decode(self, insn: int) -> tuple[Pattern, Args] | None:
        """The first matching pattern and its fields (handlers are not asked)."""
        for p in self._lookup(insn):
            return p, p.args(insn)
        return None

    def _candidates_of_key(self, key: int) -> tuple[_Candidate, ...]:
        """(mask, bits, handler, field extractor) of the patterns that words with these
        key bits may match, in table order."""
        k, patterns, extractors = self._key, self.patterns, self._extractors
        found = []
        for i in self._by_root.get(key & self._root, ()):
            p = patterns[i]
            if not (key ^ p.bits) & p.mask & k:
                fields = extractors[i]
                if fields is None:
                    fields = extractors[i] = _extractor(p)
                found.append((p.mask, p.bits, self.handlers.get(p.name), fields))
        self._memo[key] = result = tuple(found)
        return result

    def decoded(self, insn: int) -> Decoded:
        """(handler, fields) of every pattern matching ``insn``, in table order."""
        found = self.words.get(insn)
        if found is not None:
            return found
        candidates = self._memo.get(insn & self._key)
        if candidates is None:
            candidates = self._candidates_of_key(insn & self._key)
        # (a miss costs about what decoding every time did: code swept once, as a
        # linear sweep does, must not pay for the memo)
        if len(candidates) == 1:
            mask, bits, handler, fields = candidates[0]
            found = ((handler, fields(insn)),) if insn & mask == bits else ()
        else:
            found = tuple([(handler, fields(insn)) for mask, bits, handler, fields
                           in candidates if insn & mask == bits])
        words = self.words
        if len(words) >= MAX_WORDS:
            # code that big repeats its words less: start afresh (in place: a
            # translator may hold the dict)
            words.clear()
        words[insn] = found
        return found

    def __call__(self, ctx: object, insn: int) -> bool:
        """Run the handler of ``insn``; False when no pattern took it (unallocated)."""
        found = self.words.get(insn)
        if found is None:
            found = self.decoded(insn)
        for handler, a in found:
            if handler(ctx, a) is not False:
                return True
        return False


def build_decoder(text: str, handlers: object | None = None, width: int = 32,
                  source: str = "<decode>") -> Decoder:
    """Parse and check a decode table and build its decoder over ``handlers``' trans_*."""
    return Decoder(parse_table(text, width, source), handlers)


__all__ = ["Args", "DecodeError", "Decoder", "FieldSpec", "Pattern", "build_decoder",
           "check_overlaps", "overlap", "parse_table"]
