"""The options management tools (libvirt) put on every command line: ``-name``,
``-uuid``, ``-smp`` topology, ``-overcommit``, ``-msg``, ``-boot``, ``-audiodev``.

Each is parsed as QEMU parses it; a value that would make the guest or the process
behave differently from QEMU, and that pemu does not implement, is refused with a
one-line error instead of being ignored.  The keys are declared in
pemu/qemuopts/parameters.py, which ``query-command-line-options`` reports.
"""

from __future__ import annotations

import uuid as uuid_module

from pemu.qemuopts.json_options import parse_option_value
from pemu.qemuopts.keyval import OptionError, parse_bool, parse_keyval
from pemu.qemuopts.parameters import BOOLEAN, NUMBER, STRING, check_keys, declare

NAME = declare("name", {"guest": STRING, "debug-threads": BOOLEAN})
SMP = declare("smp-opts", {k: NUMBER for k in ("cpus", "sockets", "dies", "clusters",
                                               "cores", "threads", "maxcpus")})
OVERCOMMIT = declare("overcommit", {"mem-lock": BOOLEAN, "cpu-pm": BOOLEAN})
MSG = declare("msg", {"timestamp": BOOLEAN, "guest-name": BOOLEAN})
# pemu loads -kernel/-bios itself: there is no firmware boot menu and no boot device
# order, so ``strict`` (only listed devices may boot) holds whatever its value
BOOT = declare("boot-opts", {"strict": BOOLEAN, "menu": BOOLEAN})
MAX_CPUS = 512


def parse_name(text: str) -> tuple[str, bool]:
    """``-name NAME`` or ``-name guest=NAME,debug-threads=on``: (name, debug_threads)."""
    what = f"-name {text}"
    opts = parse_keyval(text, implied_key="guest", option="name")
    check_keys(NAME, opts, what)
    return opts.get("guest", ""), parse_bool(opts.get("debug-threads", "off"), what)


def parse_uuid(text: str) -> str:
    """``-uuid``: QEMU takes only the 8-4-4-4-12 hex form."""
    try:
        value = uuid_module.UUID(text)
    except ValueError:
        value = None
    if value is None or str(value) != text.lower():
        raise OptionError(f"-uuid {text}: Fail to parse UUID string")
    return str(value)


def parse_smp(text: str) -> int:
    """``-smp N[,sockets=S,cores=C,threads=T,...]``: the number of harts.

    pemu gives the guest one cluster of single-threaded cores, so the topologies it
    accepts are those that describe exactly that (sockets, dies, clusters and threads
    all 1); CPU hot-plug (maxcpus above cpus) does not exist in pemu."""
    what = f"-smp {text}"
    opts = parse_keyval(text, implied_key="cpus", option="smp")
    check_keys(SMP, opts, what)
    numbers: dict[str, int] = {}
    for key, value in opts.items():
        try:
            numbers[key] = int(value, 10)
        except ValueError:
            raise OptionError(f"{what}: Parameter '{key}' expects a number") from None
        if numbers[key] < 1:
            raise OptionError(f"{what}: Parameter '{key}' must be at least 1")
    layers = [numbers.get(k, 1) for k in ("sockets", "dies", "clusters", "threads")]
    outer = layers[0] * layers[1] * layers[2] * layers[3]
    cores = numbers.get("cores")
    cpus, maxcpus = numbers.get("cpus"), numbers.get("maxcpus")
    if cpus is None and maxcpus is None:
        cpus = maxcpus = outer * (cores or 1)
    maxcpus = maxcpus or cpus
    cpus = cpus or maxcpus
    if cores is None:  # the free variable, as in QEMU
        cores = max(1, maxcpus // outer)
    if cores * outer != maxcpus:
        raise OptionError(f"{what}: Invalid CPU topology: product of the hierarchy must "
                          f"match maxcpus: {cores * outer} != maxcpus ({maxcpus})")
    if cpus > maxcpus:
        raise OptionError(f"{what}: Invalid CPUs {cpus}: must be less than or equal to "
                          f"maxcpus ({maxcpus})")
    if cpus < maxcpus:
        raise OptionError(f"{what}: CPU hot-plug (maxcpus above cpus) is not implemented "
                          "in pemu")
    if any(n != 1 for n in layers):
        raise OptionError(f"{what}: pemu gives the guest one socket of single-threaded "
                          "cores: sockets, dies, clusters and threads other than 1 are "
                          "not implemented (use cores=N)")
    if not 1 <= cpus <= MAX_CPUS:
        raise OptionError(f"{what}: CPU count must be between 1 and {MAX_CPUS}")
    return cpus


def check_overcommit(text: str) -> None:
    """``-overcommit mem-lock=off,cpu-pm=off``: what pemu does; ``on`` is refused."""
    what = f"-overcommit {text}"
    opts = parse_keyval(text, option="overcommit")
    check_keys(OVERCOMMIT, opts, what)
    missing = {"mem-lock": "guest RAM is not locked in host memory",
               "cpu-pm": "the guest cannot idle the host CPU"}
    for key, value in opts.items():
        if parse_bool(value, f"{what}: {key}"):
            raise OptionError(f"{what}: {key}=on is not implemented in pemu "
                              f"({missing[key]})")


def parse_msg(text: str) -> tuple[bool, bool]:
    """``-msg timestamp=on,guest-name=on``: (timestamp, guest_name) for stderr lines."""
    what = f"-msg {text}"
    opts = parse_keyval(text, option="msg")
    check_keys(MSG, opts, what)
    return (parse_bool(opts.get("timestamp", "off"), what),
            parse_bool(opts.get("guest-name", "off"), what))


def check_boot(text: str) -> None:
    """``-boot strict=on|off,menu=off``: pemu has no boot menu to offer."""
    what = f"-boot {text}"
    opts = parse_keyval(text, option="boot")
    if "order" in opts or "once" in opts:
        raise OptionError(f"{what}: a boot device order is not implemented in pemu "
                          "(it boots -kernel or -bios itself)")
    check_keys(BOOT, opts, what)
    parse_bool(opts.get("strict", "off"), what)
    if parse_bool(opts.get("menu", "off"), what):
        raise OptionError(f"{what}: menu=on is not implemented in pemu (there is no "
                          "firmware boot menu)")


# -machine properties every QEMU machine has (QEMU's MachineClass), handled here for
# all boards: usb (pemu boards have no USB), dump-guest-core (guest RAM in core dumps)
GENERIC_MACHINE_OPTIONS = ("usb", "dump-guest-core")


def take_generic_machine_options(machine: dict[str, str]) -> bool:
    """Remove the generic properties from ``-machine``'s options; returns whether
    guest RAM goes into core dumps (dump-guest-core, on by default as in QEMU)."""
    usb = machine.pop("usb", None)
    if usb is not None and parse_bool(usb, "-machine usb"):
        raise OptionError("-machine usb=on: pemu's boards have no USB controller")
    dump = machine.pop("dump-guest-core", None)
    return True if dump is None else parse_bool(dump, "-machine dump-guest-core")


def parse_audiodev(text: str) -> str:
    """``-audiodev none,id=ID`` or ``{"driver":"none","id":"ID"}``: pemu has no sound
    device, so the silent backend is the only one; returns the id."""
    what = f"-audiodev {text}"
    opts = parse_option_value(text, implied_key="driver", option="audiodev")
    if "id" not in opts:
        raise OptionError(f"{what}: Parameter 'id' is missing")
    driver = opts.get("driver", "")
    if driver != "none":
        raise OptionError(f"{what}: audio driver '{driver}' is not implemented in pemu "
                          "(pemu has no sound device; use driver none)")
    for key in opts:
        if key not in ("id", "driver"):
            raise OptionError(f"{what}: Invalid parameter '{key}'")
    return opts["id"]
