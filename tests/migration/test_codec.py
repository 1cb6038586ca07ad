"""The serializer generated from a declaration, on test devices that use every kind."""

from __future__ import annotations

import pytest

from pemu.hw.core import Device, VMState, VMStateField, VMStateInvalid
from pemu.migration import MigrationError, load_device, save_device
from pemu.migration.section import decode_section, encode_section

V1_FIELDS = (
    VMStateField("lanes", "u8", equal=True),
    VMStateField("a8", "u8"), VMStateField("a16", "u16"), VMStateField("a32", "u32"),
    VMStateField("a64", "u64"), VMStateField("flag", "bool"),
    VMStateField("blob", "bytes", max=8),
    VMStateField("words", "u32[]", max="word_max"), VMStateField("flags", "bool[]"),
)


class Gadget(Device):
    """Version 2: ``added`` appeared in version 2."""

    vmstate = VMState("gadget", 2, (*V1_FIELDS, VMStateField("added", "u16", since=2)))

    def __init__(self, lanes: int = 3, id: str | None = "g0") -> None:
        super().__init__(id)
        self.lanes = lanes
        self.word_max = 1000
        self.post_loads = 0
        self.reset()

    def reset(self) -> None:
        self.a8 = self.a16 = self.a32 = self.a64 = 0
        self.flag = False
        self.blob = b""
        self.words = [0] * self.lanes
        self.flags = [False] * self.lanes
        self.added = 0xAD

    def vmstate_check(self, state) -> None:
        if state["a8"] == 0x42:
            raise VMStateInvalid("a8", "0x42 is reserved")

    def vmstate_post_load(self) -> None:
        self.post_loads += 1


class GadgetV1(Gadget):
    vmstate = VMState("gadget", 1, V1_FIELDS)


class GadgetV3(Gadget):
    """Drops support for version-1 streams."""

    vmstate = VMState("gadget", 3, Gadget.vmstate.fields, minimum_version=2)


def busy(cls: type[Gadget] = Gadget, **kw) -> Gadget:
    g = cls(**kw)
    g.a8, g.a16, g.a32, g.a64 = 0xFF, 0xFFFF, 0xFFFF_FFFF, (1 << 64) - 1
    g.flag = True
    g.blob = b"12345678"
    g.words = [0, 1000, 7]
    g.flags = [True, False, True]
    g.added = 0x1234
    return g


def state_of(g: Gadget) -> dict:
    return {f.name: getattr(g, f.name) for f in g.vmstate.fields}


def test_every_kind_round_trips_at_its_limits():
    src = busy()
    dst = Gadget()
    load_device(dst, save_device(src))
    assert state_of(dst) == state_of(src)
    assert dst.post_loads == 1


def test_section_carries_name_and_version():
    section, end = decode_section(save_device(busy()))
    assert (section.name, section.version) == ("gadget", 2)
    first = save_device(busy())
    both = first + save_device(Gadget())
    _, second_start = decode_section(both)
    assert second_start == len(first)  # sections are self-delimiting: a stream is a row


def test_older_version_loads_and_new_field_keeps_its_reset_value():
    dst = Gadget()
    load_device(dst, save_device(busy(GadgetV1)))
    assert dst.a64 == (1 << 64) - 1 and dst.blob == b"12345678"
    assert dst.added == 0xAD


def test_newer_version_is_refused_by_name():
    dst = GadgetV1()
    with pytest.raises(MigrationError, match="version 2 is newer than this device's version 1"):
        load_device(dst, save_device(busy()))


def test_version_below_minimum_is_refused():
    with pytest.raises(MigrationError, match=r"version 1 is older than the oldest .* \(2\)"):
        load_device(GadgetV3(), save_device(busy(GadgetV1)))
    dst = GadgetV3()
    load_device(dst, save_device(busy()))  # version 2 is still fine
    assert dst.added == 0x1234


def test_wrong_section_is_refused():
    other = encode_section("plic", 2, decode_section(save_device(busy()))[0].payload)
    with pytest.raises(MigrationError, match="state of 'plic', not 'gadget'"):
        load_device(Gadget(), other)


def test_configuration_mismatch_names_the_field():
    with pytest.raises(MigrationError, match=r"gadget 'g0': lanes: .*saved with 3.* has 4"):
        load_device(Gadget(lanes=4), save_device(busy()))


def test_array_length_mismatch_names_the_field():
    class Wider(Gadget):  # same declaration, but not checking lanes: arrays must catch it
        vmstate = VMState("gadget", 2, Gadget.vmstate.fields[1:])

    with pytest.raises(MigrationError, match="words: 3 elements in the state, 5 in this"):
        load_device(Wider(lanes=5), save_device(busy(Wider)))


def test_max_may_name_a_device_attribute():
    src = busy()
    src.words = [0, 1001, 0]
    data = save_device(src)  # saving does not judge ranges the kind allows ...
    dst = Gadget()
    with pytest.raises(MigrationError, match="words: value 1001 is out of range"):
        load_device(dst, data)  # ... loading does, against the receiving device
    dst.word_max = 2000
    load_device(dst, data)
    assert dst.words == [0, 1001, 0]


def test_device_check_becomes_a_migration_error():
    src = busy()
    src.a8 = 0x42
    dst = Gadget()
    with pytest.raises(MigrationError, match="gadget 'g0': a8: 0x42 is reserved") as e:
        load_device(dst, save_device(src))
    assert e.value.field == "a8" and e.value.device == "gadget 'g0'"
    assert state_of(dst) == state_of(Gadget()) and dst.post_loads == 0


@pytest.mark.parametrize("name,value,why", [
    ("a8", 256, "does not fit in 8 bits"),
    ("a64", -1, "does not fit in 64 bits"),
    ("flag", 2, "is not a bool"),
    ("blob", b"123456789", "9 bytes, more than the declared 8"),
    ("words", [0, "x", 0], "is not an integer"),
])
def test_saving_a_value_the_declaration_does_not_allow_is_an_error(name, value, why):
    g = busy()
    setattr(g, name, value)
    with pytest.raises(MigrationError, match=f"{name}: cannot save: .*{why}"):
        save_device(g)


def test_device_without_declaration():
    class Plain(Device):
        type_name = "plain"

    with pytest.raises(MigrationError, match="plain: the device declares no state"):
        save_device(Plain())
    with pytest.raises(MigrationError, match="declares no state"):
        load_device(Plain(), save_device(busy()))


def test_failure_while_applying_rolls_back():
    class Fragile(Gadget):
        @property
        def flags(self):
            return self._flags

        @flags.setter
        def flags(self, value):
            if value == [True, True, True]:
                raise RuntimeError("setter bug")
            self._flags = value

    dst = busy(Fragile)
    before = state_of(dst)
    src = busy(Fragile)
    src._flags = [True, True, True]
    src.a8 = 1
    with pytest.raises(MigrationError, match="applying the state failed: RuntimeError"):
        load_device(dst, save_device(src))
    assert state_of(dst) == before


@pytest.mark.parametrize("fields,why", [
    ((VMStateField("x", "u24"),), "unknown kind"),
    ((VMStateField("x", "u8"), VMStateField("x", "u16")), "declared twice"),
    ((VMStateField("x", "u8", since=3),), "since=3 outside 1..2"),
    ((VMStateField("x", "bytes"),), "bytes need a max length"),
])
def test_broken_declarations_fail_at_definition(fields, why):
    with pytest.raises(ValueError, match=why):
        VMState("broken", 2, fields)
    with pytest.raises(ValueError, match="minimum_version 3"):
        VMState("broken", 2, (), minimum_version=3)


def test_state_beyond_the_section_limit_is_not_saved(monkeypatch):
    from pemu.migration import section

    monkeypatch.setattr(section, "MAX_PAYLOAD", 16)
    with pytest.raises(MigrationError, match="gadget 'g0': cannot save: payload of"):
        save_device(busy())
