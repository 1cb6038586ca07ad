"""QMP ``query-pci`` (QEMU's PciInfo schema) and HMP ``info pci``, from the board's
PCI host (``machine.pci_host``; None on boards without PCI)."""

from __future__ import annotations

from pemu.hw.pci import config as C
from pemu.hw.pci.bar import BAR_MEM64
from pemu.hw.pci.bus import PCIBus
from pemu.hw.pci.device import PIN_NAMES, PCIDevice
from pemu.hw.pci.host import PCIHost

UNMAPPED = (1 << 64) - 1  # QEMU's PCI_BAR_UNMAPPED, as query-pci reports it

# what ``info pci`` calls a class (base class << 8 | subclass), as QEMU's table does
CLASS_NAMES = {
    0x0100: "SCSI controller", 0x0101: "IDE controller", 0x0106: "SATA controller",
    0x0108: "NVMe controller", 0x0200: "Ethernet controller", 0x0600: "Host bridge",
    0x0604: "PCI bridge", 0x0780: "Communication controller",
}


def _regions(dev: PCIDevice) -> list[dict]:
    mapped = {bar.index: addr for bar, addr in dev.bar_mappings()}
    out = []
    for bar in dev.bars:
        if bar is None:
            continue
        region = {"bar": bar.index, "type": "io" if bar.is_io else "memory",
                  "address": mapped.get(bar.index, UNMAPPED), "size": bar.size}
        if not bar.is_io:
            region["prefetch"] = bar.prefetchable
            region["mem_type_64"] = bar.kind == BAR_MEM64
        out.append(region)
    return out


def _device_info(bus: PCIBus, dev: PCIDevice) -> dict:
    cfg = dev.config
    cls = cfg.get(C.CLASS_DEVICE, 2)
    info: dict = {
        "bus": bus.number, "slot": dev.slot, "function": dev.function,
        "class_info": {"class": cls} | ({"desc": CLASS_NAMES[cls]} if cls in CLASS_NAMES
                                        else {}),
        "id": {"device": cfg.get(C.DEVICE_ID, 2), "vendor": cfg.get(C.VENDOR_ID, 2)},
        "irq_pin": dev.interrupt_pin,
        "qdev_id": dev.id or "",
        "regions": _regions(dev),
    }
    if dev.header_type == C.HEADER_TYPE_NORMAL:
        info["id"]["subsystem"] = cfg.get(C.SUBSYSTEM_ID, 2)
        info["id"]["subsystem-vendor"] = cfg.get(C.SUBSYSTEM_VENDOR_ID, 2)
    if dev.interrupt_pin:
        info["irq"] = cfg.get(C.INTERRUPT_LINE, 1)
    secondary = getattr(dev, "secondary", None)
    if secondary is not None:
        info["pci_bridge"] = {
            "bus": {"number": bus.number, "secondary": cfg.get(C.SECONDARY_BUS, 1),
                    "subordinate": cfg.get(C.SUBORDINATE_BUS, 1)},
            "devices": [_device_info(secondary, d) for _, d in sorted(
                secondary.devices.items())]}
    return info


def query_pci(host: PCIHost | None) -> list[dict]:
    if host is None:
        return []
    with host.lock:
        bus = host.root_bus
        return [{"bus": bus.number,
                 "devices": [_device_info(bus, d) for _, d in sorted(bus.devices.items())]}]


def _hmp_device(info: dict, out: list[str]) -> None:
    cls = info["class_info"]
    out.append(f"  Bus {info['bus']:2d}, device {info['slot']:3d}, function "
               f"{info['function']}:")
    name = cls.get("desc") or f"Class {cls['class']:04d}"  # QEMU prints it in decimal
    out.append(f"    {name}: PCI device {info['id']['vendor']:04x}:"
               f"{info['id']['device']:04x}")
    if "subsystem" in info["id"]:
        out.append(f"      PCI subsystem {info['id']['subsystem-vendor']:04x}:"
                   f"{info['id']['subsystem']:04x}")
    if info["irq_pin"]:
        out.append(f"      IRQ {info.get('irq', 0)}, pin {PIN_NAMES[info['irq_pin']]}")
    bridge = info.get("pci_bridge")
    if bridge is not None:
        out.append(f"      BUS {bridge['bus']['number']}.")
        out.append(f"      secondary bus {bridge['bus']['secondary']}.")
        out.append(f"      subordinate bus {bridge['bus']['subordinate']}.")
    for r in info["regions"]:
        end = (r["address"] + r["size"] - 1) & UNMAPPED  # QEMU's wrap for unmapped BARs
        if r["type"] == "io":
            out.append(f"      BAR{r['bar']}: I/O at 0x{r['address']:04x} [0x{end:04x}].")
        else:
            kind = ("64 bit" if r["mem_type_64"] else "32 bit") + (
                " prefetchable" if r["prefetch"] else "")
            out.append(f"      BAR{r['bar']}: {kind} memory at 0x{r['address']:08x} "
                       f"[0x{end:08x}].")
    out.append(f"      id \"{info['qdev_id']}\"")
    for child in (bridge or {}).get("devices", []):
        _hmp_device(child, out)


def info_pci(host: PCIHost | None) -> str:
    out: list[str] = []
    for bus in query_pci(host):
        for dev in bus["devices"]:
            _hmp_device(dev, out)
    return "".join(line + "\n" for line in out)
