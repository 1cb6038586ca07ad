"""The QMP commands pemu implements, with their schema.

Each handler receives the ``CommandContext`` and its arguments (dashes turned into
underscores), already checked against the declared types.
"""

from __future__ import annotations

import os
import platform

from pemu.block.drivers import block_drivers
from pemu.hw import all_types  # noqa: F401 - every type the registry answers about
from pemu.migration.channel_spec import CPR as CPR_CHANNEL
from pemu.migration.channel_spec import MAIN as MAIN_CHANNEL
from pemu.migration.channel_spec import ChannelSpecError, channels_uris
from pemu.monitor import (
    balloon_commands,
    block_jobs,
    chardev_commands,
    fd_commands,
    introspection_commands,
    net_commands,
    object_commands,
    pci_commands,
    qom,
    vm_snapshots,
)
from pemu.monitor.errors import DEVICE_NOT_FOUND, ERROR_CLASSES, QMPError
from pemu.monitor.hmp import HMPInterpreter
from pemu.monitor.machine import RUN_STATES, RUNNING
from pemu.monitor.migrate import migration_of
from pemu.monitor.migrate_settings import (
    PARAMETER_TYPES,
    query_capabilities,
    set_capabilities,
    set_parameters,
)
from pemu.monitor.qmp import VERSION, CommandContext
from pemu.monitor.save_file import save_atomically
from pemu.monitor.schema import Schema
from pemu.qom import registry

SCHEMA = Schema()
s = SCHEMA
command = SCHEMA.command

MEMSAVE_CHUNK = 1 << 20
_HOST_TARGET = {"x86_64": "x86_64", "amd64": "x86_64", "riscv64": "riscv64"}.get(
    platform.machine().lower(), platform.machine().lower())

# -- types --------------------------------------------------------------------------
s.enum("QapiErrorClass", list(ERROR_CLASSES))
s.enum("RunState", list(RUN_STATES))
s.enum("SysEmuTarget", ["riscv64", "x86_64"])
s.enum("ShutdownCause", ["none", "host-error", "host-qmp-quit", "host-qmp-system-reset",
                         "host-signal", "host-ui", "guest-shutdown", "guest-reset",
                         "guest-panic", "subsystem-reset"])
s.enum("QMPCapability", ["oob"])
s.enum("BlockdevDriver", [d.name for d in block_drivers()])  # every declared driver
s.enum("NewImageMode", ["existing", "absolute-paths"])
s.enum("IoOperationType", ["read", "write"])
s.enum("BlockErrorAction", ["ignore", "report", "stop"])
s.struct("VersionTriple", {"major": "int", "minor": "int", "micro": "int"})
s.struct("VersionInfo", {"qemu": "VersionTriple", "package": "str"})
s.struct("StatusInfo", {"running": "bool", "singlestep": "bool", "status": "RunState"})
s.struct("CommandInfo", {"name": "str"})
s.struct("NameInfo", {"*name": "str"})
s.struct("KvmInfo", {"enabled": "bool", "present": "bool"})
s.struct("TargetInfo", {"arch": "SysEmuTarget"})
s.struct("MachineInfo", {"name": "str", "*alias": "str", "*is-default": "bool",
                         "cpu-max": "int", "hotpluggable-cpus": "bool",
                         "numa-mem-supported": "bool", "deprecated": "bool",
                         "*default-cpu-type": "str", "*default-ram-id": "str"})
s.struct("CpuInstanceProperties", {"*node-id": "int", "*socket-id": "int",
                                   "*core-id": "int", "*thread-id": "int"})
s.struct("CpuInfoFast", {"cpu-index": "int", "qom-path": "str", "thread-id": "int",
                         "*props": "CpuInstanceProperties", "target": "SysEmuTarget"})
s.struct("ChardevInfo", {"label": "str", "filename": "str", "frontend-open": "bool"})
s.struct("ObjectPropertyInfo", {"name": "str", "type": "str", "*description": "str",
                                "*default-value": "any"})
s.struct("ObjectTypeInfo", {"name": "str", "*abstract": "bool", "*parent": "str"})
s.struct("CpuDefinitionInfo", {"name": "str", "typename": "str", "static": "bool",
                               "deprecated": "bool"})
s.struct("SchemaInfo", {"name": "str", "meta-type": "str"})
s.struct("ChardevReturn", {"*pty": "str"})
# BlockInfo and BlockStats are large; their members are documented in docs/MONITOR.md
s.struct("BlockInfo", {"device": "str", "*qdev": "str", "type": "str", "removable": "bool",
                       "locked": "bool", "*inserted": "any", "io-status": "str"})
s.struct("BlockStats", {"*device": "str", "*qdev": "str", "*node-name": "str",
                        "stats": "any"})
s.struct("BlockDeviceInfo", {"node-name": "str", "drv": "str", "file": "str", "ro": "bool",
                             "image": "any"})
s.struct("BlockdevRefFile", {"driver": "str", "filename": "str"})
s.enum("RxState", ["normal", "none", "all"])
s.struct("RxFilterInfo", {"name": "str", "promiscuous": "bool", "multicast": "RxState",
                          "unicast": "RxState", "vlan": "RxState", "broadcast-allowed": "bool",
                          "multicast-overflow": "bool", "unicast-overflow": "bool",
                          "main-mac": "str", "vlan-table": "[int]", "unicast-table": "[str]",
                          "multicast-table": "[str]"})

s.struct("PciDeviceClass", {"*desc": "str", "class": "int"})
s.struct("PciDeviceId", {"device": "int", "vendor": "int", "*subsystem": "int",
                         "*subsystem-vendor": "int"})
s.struct("PciMemoryRegion", {"bar": "int", "type": "str", "address": "int", "size": "int",
                             "*prefetch": "bool", "*mem_type_64": "bool"})
s.struct("PciDeviceInfo", {"bus": "int", "slot": "int", "function": "int",
                           "class_info": "PciDeviceClass", "id": "PciDeviceId",
                           "*irq": "int", "irq_pin": "int", "qdev_id": "str",
                           "*pci_bridge": "any", "regions": "[PciMemoryRegion]"})
s.struct("PciInfo", {"bus": "int", "devices": "[PciDeviceInfo]"})

s.event("STOP")
s.event("RESUME")
s.event("POWERDOWN")
s.event("SHUTDOWN", {"guest": "bool", "reason": "ShutdownCause"})
s.event("RESET", {"guest": "bool", "reason": "ShutdownCause"})
s.event("BLOCK_IO_ERROR", {"device": "str", "*node-name": "str",
                           "operation": "IoOperationType", "action": "BlockErrorAction",
                           "*nospace": "bool", "reason": "str"})
s.event("DEVICE_DELETED", {"*device": "str", "path": "str"})
s.event("VSERPORT_CHANGE", {"id": "str", "open": "bool"})  # a guest opened/closed a port


# -- session and introspection --------------------------------------------------------
@command("qmp_capabilities", {"*enable": "[QMPCapability]"})
def qmp_capabilities(ctx: CommandContext, enable: list[str] | None = None) -> None:
    if enable:
        raise QMPError(f"Capability '{enable[0]}' not available")
    assert ctx.session is not None
    ctx.session.negotiation_done()


@command("query-version", returns="VersionInfo")
def query_version(ctx: CommandContext) -> dict:
    return VERSION


@command("query-commands", returns="[CommandInfo]")
def query_commands(ctx: CommandContext) -> list:
    return [{"name": name} for name in sorted(SCHEMA.commands)]


@command("query-qmp-schema", returns="[SchemaInfo]")
def query_qmp_schema(ctx: CommandContext) -> list:
    return SCHEMA.introspect()


@command("query-name", returns="NameInfo")
def query_name(ctx: CommandContext) -> dict:
    name = ctx.machine.name
    return {"name": name} if name else {}


@command("query-status", returns="StatusInfo")
def query_status(ctx: CommandContext) -> dict:
    state = ctx.machine.run_state
    return {"status": state, "running": state == RUNNING, "singlestep": False}


@command("query-kvm", returns="KvmInfo")
def query_kvm(ctx: CommandContext) -> dict:
    # KVM runs only guests of the host's own architecture (QEMU builds it only there)
    present = os.path.exists("/dev/kvm") and ctx.machine.target == _HOST_TARGET
    return {"enabled": ctx.machine.accel == "kvm", "present": present}


@command("query-target", returns="TargetInfo")
def query_target(ctx: CommandContext) -> dict:
    return {"arch": ctx.machine.target}


_CPU_MAX = {"riscv64": 8, "x86_64": 288}


@command("query-machines", returns="[MachineInfo]")
def query_machines(ctx: CommandContext) -> list:
    arch = ctx.machine.target
    cpus = registry.types(registry.CPU, arch)
    default_cpu = next((c for c in cpus if c.is_default), None)
    out = []
    for m in registry.types(registry.MACHINE, arch):
        info = {"name": m.name, "cpu-max": _CPU_MAX.get(arch, 1), "hotpluggable-cpus": False,
                "numa-mem-supported": False, "deprecated": False, "default-ram-id": "ram"}
        if m.is_default:
            info["is-default"] = True
        if default_cpu is not None:
            info["default-cpu-type"] = default_cpu.qom_type
        out.append(info)
    return out


@command("query-cpu-definitions", returns="[CpuDefinitionInfo]")
def query_cpu_definitions(ctx: CommandContext) -> list:
    return [{"name": c.name, "typename": c.qom_type, "static": False, "deprecated": False}
            for c in registry.types(registry.CPU, ctx.machine.target)]


def _qom_types(arch: str) -> list[registry.TypeInfo]:
    return (registry.types(registry.MACHINE, arch) + registry.types(registry.CPU, arch)
            + registry.types(registry.DEVICE) + registry.types(registry.OBJECT, arch))


@command("qom-list-types", {"*implements": "str", "*abstract": "bool"}, "[ObjectTypeInfo]")
def qom_list_types(ctx: CommandContext, implements: str | None = None,
                   abstract: bool = False) -> list:
    parents = {registry.MACHINE: "machine", registry.CPU: "cpu", registry.DEVICE: "device",
               registry.OBJECT: "object"}
    out = []
    for t in _qom_types(ctx.machine.target):
        parent = f"{t.bus.removesuffix('-bus')}-device" if t.bus else parents[t.kind]
        if implements is not None and implements not in (t.qom_type, parent,
                                                         parents[t.kind]):
            continue
        # a device alias is a type of its own in QEMU (virtio-blk-pci-non-transitional)
        aliases = t.aliases if t.kind == registry.DEVICE else ()
        out += [{"name": name, "parent": parent} for name in (t.qom_type, *aliases)]
    return out


def _property_infos(info: registry.TypeInfo) -> list:
    out = []
    for p in info.properties:
        entry = {"name": p.name, "type": p.type}
        if p.description:
            entry["description"] = p.description
        if p.default is not None:
            entry["default-value"] = p.default
        out.append(entry)
    return out


@command("device-list-properties", {"typename": "str"}, "[ObjectPropertyInfo]")
def device_list_properties(ctx: CommandContext, typename: str) -> list:
    try:
        info = registry.lookup(registry.DEVICE, typename)
    except registry.RegistryError:
        raise QMPError(f"The device type '{typename}' was not found",
                       DEVICE_NOT_FOUND) from None
    return _property_infos(info)


@command("qom-list-properties", {"typename": "str"}, "[ObjectPropertyInfo]")
def qom_list_properties(ctx: CommandContext, typename: str) -> list:
    for t in _qom_types(ctx.machine.target):
        if typename in (t.qom_type, t.name):
            return [{"name": "type", "type": "string"}] + _property_infos(t)
    raise QMPError(f"Class '{typename}' not found", DEVICE_NOT_FOUND)


@command("query-cpus-fast", returns="[CpuInfoFast]")
def query_cpus_fast(ctx: CommandContext) -> list:
    m = ctx.machine
    return [{"cpu-index": c.index, "qom-path": f"/machine/unattached/device[{c.index}]",
             "thread-id": c.thread_id, "props": c.props or {"core-id": c.index},
             "target": m.target} for c in m.cpus()]


# -- run control ------------------------------------------------------------------------
@command("stop")
def stop(ctx: CommandContext) -> None:
    ctx.machine.stop()


@command("cont")
def cont(ctx: CommandContext) -> None:
    ctx.machine.cont()


@command("system_reset")
def system_reset(ctx: CommandContext) -> None:
    ctx.machine.system_reset()


@command("system_powerdown")
def system_powerdown(ctx: CommandContext) -> None:
    ctx.machine.system_powerdown()


@command("quit")
def quit_(ctx: CommandContext) -> None:
    ctx.machine.quit()


@command("device_add", {"driver": "str", "*id": "str", "*bus": "str"}, open_args=True)
def device_add(ctx: CommandContext, driver: str, **props: object) -> None:
    """Properties as QEMU takes them: JSON strings, numbers and booleans."""
    try:
        declared = {p.name for p in registry.lookup(registry.DEVICE, driver).properties}
    except registry.RegistryError as e:
        raise QMPError(str(e)) from None
    options = {"driver": driver}
    for key, value in props.items():
        if isinstance(value, bool):
            value = "on" if value else "off"
        elif not isinstance(value, (str, int)):
            raise QMPError(f"Parameter '{key}' expects a string, number or boolean")
        # the dispatcher turned dashes into underscores; a property has one spelling
        dashed = key.replace("_", "-")
        options[dashed if dashed in declared and key not in declared else key] = str(value)
    ctx.machine.device_add(options)


@command("device_del", {"id": "str"})
def device_del(ctx: CommandContext, id: str) -> None:
    ctx.machine.device_del(id)


@command("human-monitor-command", {"command-line": "str", "*cpu-index": "int"}, "str")
def human_monitor_command(ctx: CommandContext, command_line: str,
                          cpu_index: int | None = None) -> str:
    hmp = HMPInterpreter(ctx.machine, ctx.monitors)
    if cpu_index is not None:
        hmp.select_cpu(cpu_index)
    return hmp.execute(command_line)


# -- memory -----------------------------------------------------------------------------
def _save(ctx: CommandContext, addr: int, size: int, filename: str, physical: bool,
          cpu_index: int) -> None:
    if size < 0 or addr < 0:
        raise QMPError("Invalid parameter: address and size must be non-negative")
    cpus = ctx.machine.cpus()
    if not physical and cpus and not 0 <= cpu_index < len(cpus):
        raise QMPError(f"Invalid parameter 'cpu-index': no CPU {cpu_index}")
    def chunks():
        for done in range(0, size, MEMSAVE_CHUNK):
            n = min(MEMSAVE_CHUNK, size - done)
            yield ctx.machine.read_memory(addr + done, n, physical, cpu_index)

    try:
        save_atomically(filename, chunks())  # a read that fails half way leaves no file
    except OSError as e:
        raise QMPError(f"Could not open '{filename}': {e.strerror}") from None


@command("memsave", {"val": "int", "size": "int", "filename": "str", "*cpu-index": "int"})
def memsave(ctx: CommandContext, val: int, size: int, filename: str, cpu_index: int = 0) -> None:
    _save(ctx, val, size, filename, False, cpu_index)


@command("pmemsave", {"val": "int", "size": "int", "filename": "str"})
def pmemsave(ctx: CommandContext, val: int, size: int, filename: str) -> None:
    _save(ctx, val, size, filename, True, 0)


# -- block --------------------------------------------------------------------------------
@command("query-block", returns="[BlockInfo]")
def query_block(ctx: CommandContext) -> list:
    return ctx.machine.block.query_block()


@command("query-blockstats", {"*query-nodes": "bool"}, "[BlockStats]")
def query_blockstats(ctx: CommandContext, query_nodes: bool = False) -> list:
    return ctx.machine.block.query_blockstats()


@command("query-named-block-nodes", {"*flat": "bool"}, "[BlockDeviceInfo]")
def query_named_block_nodes(ctx: CommandContext, flat: bool = False) -> list:
    return ctx.machine.block.query_named_nodes()


@command("blockdev-add", {"driver": "BlockdevDriver", "node-name": "str", "*file": "any",
                          "*filename": "str", "*read-only": "bool", "*discard": "str",
                          "*cache": "any", "*auto-read-only": "bool", "*backing": "any"})
def blockdev_add(ctx: CommandContext, **args: object) -> None:
    ctx.machine.block.blockdev_add({k.replace("_", "-"): v for k, v in args.items()})


@command("blockdev-del", {"node-name": "str"})
def blockdev_del(ctx: CommandContext, node_name: str) -> None:
    ctx.machine.block.blockdev_del(node_name)


@command("block_resize", {"*device": "str", "*node-name": "str", "size": "int"})
def block_resize(ctx: CommandContext, size: int, device: str | None = None,
                 node_name: str | None = None) -> None:
    ctx.machine.block.resize(device, node_name, size)


@command("blockdev-snapshot-sync", {"*device": "str", "*node-name": "str",
                                    "snapshot-file": "str", "*snapshot-node-name": "str",
                                    "*format": "str", "*mode": "NewImageMode"})
def blockdev_snapshot_sync(ctx: CommandContext, snapshot_file: str, device: str | None = None,
                           node_name: str | None = None, snapshot_node_name: str | None = None,
                           format: str = "qcow2", mode: str = "absolute-paths") -> None:
    ctx.machine.block.snapshot_sync(device, node_name, snapshot_file, snapshot_node_name,
                                    format, mode)


# -- QOM ---------------------------------------------------------------------------------
@command("qom-list", {"path": "str"}, "[ObjectPropertyInfo]")
def qom_list(ctx: CommandContext, path: str) -> list:
    return qom.qom_list(qom.build_tree(ctx.machine), path)


@command("qom-get", {"path": "str", "property": "str"}, "any")
def qom_get(ctx: CommandContext, path: str, property: str) -> object:
    return qom.qom_get(qom.build_tree(ctx.machine), path, property)


@command("qom-set", {"path": "str", "property": "str", "value": "any"})
def qom_set(ctx: CommandContext, path: str, property: str, value: object) -> None:
    qom.qom_set(qom.build_tree(ctx.machine), path, property, value)


# -- PCI ----------------------------------------------------------------------------------
@command("query-pci", returns="[PciInfo]")
def query_pci(ctx: CommandContext) -> list:
    return pci_commands.query_pci(ctx.machine.pci_host)


# -- chardevs -----------------------------------------------------------------------------
@command("query-chardev", returns="[ChardevInfo]")
def query_chardev(ctx: CommandContext) -> list:
    return chardev_commands.query_chardev(ctx.machine.chardevs)


@command("chardev-add", {"id": "str", "backend": "any"}, "ChardevReturn")
def chardev_add(ctx: CommandContext, id: str, backend: object) -> dict:
    return chardev_commands.chardev_add(ctx.machine.chardevs, id, backend)


@command("chardev-remove", {"id": "str"})
def chardev_remove(ctx: CommandContext, id: str) -> None:
    chardev_commands.chardev_remove(ctx.machine.chardevs, id)


s.enum("DataFormat", ["utf8", "base64"])


@command("ringbuf-write", {"device": "str", "data": "str", "*format": "DataFormat"})
def ringbuf_write(ctx: CommandContext, device: str, data: str, format: str = "utf8") -> None:
    chardev_commands.ringbuf_write(ctx.machine.chardevs, device, data, format)


@command("ringbuf-read", {"device": "str", "size": "int", "*format": "DataFormat"}, "str")
def ringbuf_read(ctx: CommandContext, device: str, size: int, format: str = "utf8") -> str:
    return chardev_commands.ringbuf_read(ctx.machine.chardevs, device, size, format)


# -- network ------------------------------------------------------------------------------
@command("set_link", {"name": "str", "up": "bool"})
def set_link(ctx: CommandContext, name: str, up: bool) -> None:
    net_commands.set_link(ctx.machine, name, up)


@command("netdev_add", {"type": "str", "id": "str", **net_commands.NETDEV_ADD_MEMBERS})
def netdev_add(ctx: CommandContext, type: str, id: str, **options: object) -> None:
    net_commands.netdev_add(ctx.machine, type, id,
                            {k.replace("_", "-"): v for k, v in options.items()})


@command("query-rx-filter", {"*name": "str"}, "[RxFilterInfo]")
def query_rx_filter(ctx: CommandContext, name: str | None = None) -> list:
    return net_commands.query_rx_filter(ctx.machine, name)


@command("netdev_del", {"id": "str"})
def netdev_del(ctx: CommandContext, id: str) -> None:
    net_commands.netdev_del(ctx.machine, id)


# -- VM state: snapshots as jobs (pemu/monitor/vm_snapshots.py, jobs.py) -----------------
s.enum("JobType", ["snapshot-save", "snapshot-load", "snapshot-delete", "mirror"])
s.enum("JobStatus", ["undefined", "created", "running", "paused", "ready", "standby",
                     "waiting", "pending", "aborting", "concluded", "null"])
s.struct("JobInfo", {"id": "str", "type": "JobType", "status": "JobStatus",
                     "current-progress": "int", "total-progress": "int", "*error": "str"})
s.event("JOB_STATUS_CHANGE", {"id": "str", "status": "JobStatus"})


@command("snapshot-save", {"job-id": "str", "tag": "str", "vmstate": "str",
                           "devices": "[str]"})
def snapshot_save(ctx: CommandContext, job_id: str, tag: str, vmstate: str,
                  devices: list[str]) -> None:
    vm_snapshots.snapshot_disks(ctx.machine, devices)  # refuse bad names synchronously
    ctx.machine.jobs.start(job_id, "snapshot-save", lambda: vm_snapshots.save_vm(
        ctx.machine, tag, vmstate, devices, overwrite=False))


@command("snapshot-load", {"job-id": "str", "tag": "str", "vmstate": "str",
                           "devices": "[str]"})
def snapshot_load(ctx: CommandContext, job_id: str, tag: str, vmstate: str,
                  devices: list[str]) -> None:
    vm_snapshots.snapshot_disks(ctx.machine, devices)
    ctx.machine.jobs.start(job_id, "snapshot-load", lambda: vm_snapshots.load_vm(
        ctx.machine, tag, vmstate, devices))


@command("snapshot-delete", {"job-id": "str", "tag": "str", "devices": "[str]"})
def snapshot_delete(ctx: CommandContext, job_id: str, tag: str, devices: list[str]) -> None:
    vm_snapshots.snapshot_disks(ctx.machine, devices)
    ctx.machine.jobs.start(job_id, "snapshot-delete", lambda: vm_snapshots.delete_vm(
        ctx.machine, tag, devices))


@command("query-jobs", returns="[JobInfo]")
def query_jobs(ctx: CommandContext) -> list:
    return ctx.machine.jobs.query()


@command("job-dismiss", {"id": "str"})
def job_dismiss(ctx: CommandContext, id: str) -> None:
    ctx.machine.jobs.dismiss(id)


# -- live migration (pemu/monitor/migrate.py) ---------------------------------------------
s.enum("MigrationStatus", ["none", "setup", "cancelling", "cancelled", "active",
                           "postcopy-active", "postcopy-paused", "postcopy-recover",
                           "completed", "failed", "colo", "pre-switchover", "device",
                           "wait-unplug"])
s.struct("MigrationCapabilityStatus", {"capability": "str", "state": "bool"})
s.struct("MigrationParameters", {"*max-bandwidth": "int", "*downtime-limit": "int",
                                 "*tls-creds": "str", "*tls-authz": "str",
                                 "*tls-hostname": "str", "*mode": "str"})
s.event("MIGRATION", {"status": "MigrationStatus"})
s.event("MIGRATION_PASS", {"pass": "int"})


def _channel_uris(uri: str | None, channels: list | None) -> tuple[str, str | None]:
    """``uri`` or QEMU 9.1's ``channels`` (a main and, for cpr-transfer, a cpr
    channel): the main URI and the cpr URI."""
    if (uri is None) == (channels is None):
        raise QMPError("need either 'uri' or 'channels' argument")
    if channels is None:
        return str(uri), None
    try:
        uris = channels_uris(channels)
    except ChannelSpecError as e:
        raise QMPError(str(e)) from None
    if MAIN_CHANNEL not in uris:
        raise QMPError("a 'main' channel is required")
    return uris[MAIN_CHANNEL], uris.get(CPR_CHANNEL)


@command("migrate", {"*uri": "str", "*channels": "any", "*detach": "bool", "*resume": "bool",
                     "*blk": "bool", "*inc": "bool"})
def migrate(ctx: CommandContext, uri: str | None = None, channels: list | None = None,
            detach: bool = True, resume: bool = False, blk: bool = False,
            inc: bool = False) -> None:
    if resume or blk or inc:
        raise QMPError("migrate: resume, blk and inc are not supported (use shared storage)")
    main, cpr = _channel_uris(uri, channels)
    migration_of(ctx.machine).start(main, cpr)


@command("migrate-incoming", {"*uri": "str", "*channels": "any"})
def migrate_incoming(ctx: CommandContext, uri: str | None = None,
                     channels: list | None = None) -> None:
    m = ctx.machine
    if m.run_state != "inmigrate" or getattr(m, "incoming_deferred", None) is None:
        raise QMPError("'-incoming' was not specified on the command line")
    main, cpr = _channel_uris(uri, channels)
    autostart, on_failure = m.incoming_deferred
    m.incoming_deferred = None
    migration_of(m).listen(main, autostart, on_failure, cpr)


@command("migrate_cancel")
def migrate_cancel(ctx: CommandContext) -> None:
    migration_of(ctx.machine).cancel()


@command("query-migrate")
def query_migrate(ctx: CommandContext) -> dict:
    return migration_of(ctx.machine).query()


@command("migrate-set-parameters", {f"*{name}": t for name, t in PARAMETER_TYPES.items()})
def migrate_set_parameters(ctx: CommandContext, **values: object) -> None:
    set_parameters(migration_of(ctx.machine),
                   {name.replace("_", "-"): v for name, v in values.items()})


@command("query-migrate-parameters", returns="MigrationParameters")
def query_migrate_parameters(ctx: CommandContext) -> dict:
    return dict(migration_of(ctx.machine).parameters)


@command("migrate-set-capabilities", {"capabilities": "[MigrationCapabilityStatus]"})
def migrate_set_capabilities(ctx: CommandContext, capabilities: list) -> None:
    set_capabilities(migration_of(ctx.machine),
                     {cap["capability"]: cap["state"] for cap in capabilities})


@command("query-migrate-capabilities", returns="[MigrationCapabilityStatus]")
def query_migrate_capabilities(ctx: CommandContext) -> list:
    return query_capabilities(migration_of(ctx.machine))


object_commands.register(SCHEMA)  # object-add, object-del
fd_commands.register(SCHEMA)  # add-fd, remove-fd, query-fdsets, getfd, closefd
introspection_commands.register(SCHEMA)  # query-command-line-options, query-tpm-*, ...
balloon_commands.register(SCHEMA)  # balloon, query-balloon, BALLOON_CHANGE
block_jobs.register(SCHEMA)  # drive-mirror, blockdev-mirror, query-block-jobs, ...
