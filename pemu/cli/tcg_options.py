"""What every TCG system emulator checks of ``-accel`` and ``-d`` before it builds a
board: the accelerator is tcg, its properties are known, the backend exists here, and
the log items are ones this emulator writes."""

from __future__ import annotations

from collections.abc import Collection

from pemu.accel.tcg.engine import resolve_backend
from pemu.accel.tcg.mttcg import thread_mode_asked
from pemu.accel.tcg.system_cpu import DEFAULT_BACKEND
from pemu.cli.system_config import choose_accel
from pemu.qemuopts.config import SystemConfig
from pemu.qemuopts.keyval import OptionError

ACCEL_PROPERTIES = {"accel", "backend", "tb-size", "thread"}


def check_tcg_options(cfg: SystemConfig, prog: str, guests: str,
                      log_items: Collection[str], mttcg: bool = False) -> None:
    """``guests`` names the architecture in the refusal of another accelerator;
    ``mttcg``: its boards can run each vCPU on its own thread (``thread=multi``)."""
    accel = choose_accel(cfg, ("tcg",))
    if accel != "tcg":
        raise OptionError(f"{prog}: -accel {accel}: {guests} guests run only under TCG")
    unknown = sorted(set(cfg.accel) - ACCEL_PROPERTIES)
    if unknown:
        raise OptionError(f"{prog}: -accel tcg,{unknown[0]}=...: unknown property "
                          f"(known: {', '.join(sorted(ACCEL_PROPERTIES - {'accel'}))})")
    backend = cfg.accel.get("backend", DEFAULT_BACKEND)
    try:
        resolve_backend(backend)
    except ValueError as e:
        raise OptionError(f"{prog}: -accel tcg,backend={backend}: {e}") from None
    _check_thread_mode(cfg.accel, prog, guests, backend, mttcg)
    bad = [i for i in cfg.log_items if i not in log_items]
    if bad:
        raise OptionError(f"{prog}: -d {bad[0]}: unknown log item (known: "
                          f"{', '.join(sorted(log_items))})")


def _check_thread_mode(accel: dict[str, str], prog: str, guests: str, backend: str,
                       mttcg: bool) -> None:
    """``thread=single|multi``.  Where multi cannot work, refuse it rather than fall
    back to one thread behind the user's back (QEMU refuses too where a guest or host
    lacks MTTCG support)."""
    try:
        mode = thread_mode_asked(accel)
    except ValueError as e:
        raise OptionError(f"{prog}: {e}") from None
    if mode != "multi":  # single, or the board's default (mttcg.wants_parallel_vcpus)
        return
    if not mttcg:
        raise OptionError(f"{prog}: -accel tcg,thread=multi: {guests} guests run their "
                          "vCPUs on one thread only (thread=single)")
    if resolve_backend(backend) != "native":
        raise OptionError(f"{prog}: -accel tcg,thread=multi: the python backend runs "
                          "every vCPU on one thread (use backend=native, or thread=single)")
