"""pemu-img info, map and check."""

from __future__ import annotations

import json
import sys
import time

from ..errors import BlockError
from ..node import BlockNode
from ..qcow2.check import check_image
from .util import ImgError, Secrets, getopts, open_img, size_to_str


def image_info(node: BlockNode, filename: str) -> dict:
    d: dict = {"virtual-size": node.size, "filename": filename, "format": node.format_name}
    cs = getattr(node, "cluster_size", None)
    if cs:
        d["cluster-size"] = cs
    if getattr(node, "crypto", None) is not None or node.format_name == "luks":
        d["encrypted"] = True
    d["actual-size"] = node.allocated_file_size()
    h = node.h if node.format_name == "qcow2" else None
    if h is not None and h.backing_file:
        d["backing-filename"] = h.backing_file
        d["full-backing-filename"] = node.backing_path()
        if h.backing_format:
            d["backing-filename-format"] = h.backing_format
    snaps = getattr(node, "snapshots", None)
    if snaps:
        d["snapshots"] = [{"icount": s.icount, "vm-clock-nsec": s.vm_clock_nsec % 1000000000,
                           "name": s.name, "date-sec": s.date_sec, "date-nsec": s.date_nsec,
                           "vm-clock-sec": s.vm_clock_nsec // 1000000000, "id": s.id_str,
                           "vm-state-size": s.vm_state_size} for s in snaps]
        for s, e in zip(snaps, d["snapshots"], strict=True):
            if s.icount == -1:
                del e["icount"]
    spec = node.format_specific_info()
    if spec:
        d["format-specific"] = spec
    dirty = h is not None and bool(h.incompatible_features & 1)
    d["dirty-flag"] = dirty
    return d


def snapshot_table_lines(snaps: list[dict]) -> list[str]:
    lines = ["Snapshot list:", f"{'ID':<10}{'TAG':<17}{'VM SIZE':>8}{'DATE':>20}{'VM CLOCK':>13}"
             f"{'ICOUNT':>11}"]
    for s in snaps:
        date = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(s["date-sec"]))
        secs = s["vm-clock-sec"]
        clock = f"{secs // 3600:02d}:{secs // 60 % 60:02d}:{secs % 60:02d}." \
                f"{s['vm-clock-nsec'] // 1000000:03d}"
        icount = str(s["icount"]) if "icount" in s else ""
        lines.append(f"{s['id']:<9} {s['name']:<16} {size_to_str(s['vm-state-size']):>8}"
                     f"{date:>20}{clock:>13}{icount:>11}")
    return lines


def _spec_lines(value, indent: int) -> list[str]:
    pad = " " * indent
    out: list[str] = []
    if isinstance(value, dict):
        for k, v in value.items():
            key = k.replace("-", " ")
            if isinstance(v, (dict, list)):
                out.append(f"{pad}{key}:")
                out += _spec_lines(v, indent + 4)
            else:
                out.append(f"{pad}{key}: {_scalar(v)}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            out.append(f"{pad}[{i}]:")
            out += _spec_lines(item, indent + 4)
    return out


def _scalar(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def human_info(d: dict) -> str:
    lines = [f"image: {d['filename']}", f"file format: {d['format']}",
             f"virtual size: {size_to_str(d['virtual-size'])} ({d['virtual-size']} bytes)",
             f"disk size: {size_to_str(d['actual-size'])}"]
    if d.get("encrypted"):
        lines.append("encrypted: yes")
    if "cluster-size" in d:
        lines.append(f"cluster_size: {d['cluster-size']}")
    if "backing-filename" in d:
        b = d["backing-filename"]
        full = d["full-backing-filename"]
        lines.append(f"backing file: {b}" + (f" (actual path: {full})" if full != b else ""))
        if "backing-filename-format" in d:
            lines.append(f"backing file format: {d['backing-filename-format']}")
    if d.get("snapshots"):
        lines += snapshot_table_lines(d["snapshots"])
    spec = d.get("format-specific")
    if spec:
        lines.append("Format specific information:")
        lines += _spec_lines(spec["data"], 4)
    return "\n".join(lines) + "\n"


def cmd_info(argv: list[str]) -> int:
    opts, args = getopts(argv, "f:hU", ["output=", "backing-chain", "object=", "force-share",
                                        "image-opts", "limits"])
    fmt = None
    output = "human"
    chain = False
    secrets = Secrets()
    for o, v in opts:
        if o == "-f":
            fmt = v
        elif o == "--output":
            output = v
        elif o == "--backing-chain":
            chain = True
        elif o == "--object":
            secrets.add_object(v)
    if output not in ("human", "json"):
        raise ImgError("--output must be used with human or json as argument.")
    if len(args) != 1:
        raise ImgError("Expecting one image file name")
    infos = []
    filename = args[0]
    seen = set()
    while filename:
        if filename in seen:
            raise ImgError(f"Backing file '{filename}' creates an infinite loop.")
        seen.add(filename)
        node = open_img(filename, fmt, read_only=True, secrets=secrets,
                        options={"no-io": "on"}, open_backing=False)
        try:
            d = image_info(node, filename)
        finally:
            node.close()
        infos.append(d)
        if not chain:
            break
        filename = d.get("full-backing-filename")
        fmt = d.get("backing-filename-format")
    if output == "json":
        print(json.dumps(infos if chain else infos[0], indent=4))
    else:
        sys.stdout.write("\n".join(human_info(d) for d in infos))
    return 0


# -- map -------------------------------------------------------------------------
def chain_status(node: BlockNode, offset: int, length: int) -> dict:
    depth = 0
    cur = node
    while True:
        ext = cur.block_status(offset, length)
        length = ext.length
        if ext.allocated:
            e = {"length": length, "depth": depth, "present": True, "zero": ext.zero,
                 "data": ext.data, "file": cur.filename}
            if ext.offset is not None:
                e["offset"] = ext.offset
            return e
        b = cur.backing
        if b is not None and offset < b.size:
            length = min(length, b.size - offset)
            cur = b
            depth += 1
            continue
        return {"length": length, "depth": depth, "present": False, "zero": True,
                "data": False, "file": cur.filename}


def map_extents(node: BlockNode, start: int = 0, end: int | None = None) -> list[dict]:
    end = node.size if end is None else end
    out: list[dict] = []
    pos = start
    while pos < end:
        e = chain_status(node, pos, end - pos)
        e["start"] = pos
        pos += e["length"]
        if out:
            p = out[-1]
            same = all(p[k] == e[k] for k in ("depth", "present", "zero", "data", "file"))
            contiguous = ("offset" not in p and "offset" not in e) or (
                "offset" in p and "offset" in e and p["offset"] + p["length"] == e["offset"])
            if same and contiguous:
                p["length"] += e["length"]
                continue
        out.append(e)
    return out


def cmd_map(argv: list[str]) -> int:
    opts, args = getopts(argv, "f:hU", ["output=", "object=", "start-offset=", "max-length=",
                                        "force-share", "image-opts"])
    fmt, output = None, "human"
    secrets = Secrets()
    start, max_len = 0, None
    for o, v in opts:
        if o == "-f":
            fmt = v
        elif o == "--output":
            output = v
        elif o == "--object":
            secrets.add_object(v)
        elif o == "--start-offset":
            start = int(v)
        elif o == "--max-length":
            max_len = int(v)
    if len(args) != 1:
        raise ImgError("Expecting one image file name")
    node = open_img(args[0], fmt, read_only=True, secrets=secrets)
    try:
        end = node.size if max_len is None else min(node.size, start + max_len)
        extents = map_extents(node, start, end)
    finally:
        node.close()
    if output == "json":
        rows = []
        for e in extents:
            row = {"start": e["start"], "length": e["length"], "depth": e["depth"],
                   "present": e["present"], "zero": e["zero"], "data": e["data"]}
            if "offset" in e:
                row["offset"] = e["offset"]
            rows.append("{ " + ", ".join(f'"{k}": {json.dumps(v)}' for k, v in row.items())
                        + "}")
        print("[" + ",\n".join(rows) + "]")
    else:
        print(f"{'Offset':<16}{'Length':<16}{'Mapped to':<16}File")
        for e in extents:
            if e["data"] and "offset" not in e:
                raise ImgError("File contains external, encrypted or compressed clusters.")
            if e["data"] and "offset" in e:
                print(f"{_hex(e['start'])}{_hex(e['length'])}{_hex(e['offset'])}{e['file']}")
    return 0


def _hex(v: int) -> str:
    """C's %#-16x: no 0x prefix for zero."""
    return f"{(hex(v) if v else '0'):<16}"


# -- check -----------------------------------------------------------------------
def _check_dict(res, filename: str, fmt: str) -> dict:
    d: dict = {}
    if res.image_end_offset:
        d["image-end-offset"] = res.image_end_offset
    if res.total_clusters:
        d["total-clusters"] = res.total_clusters
    d["check-errors"] = res.check_errors
    for key, val in (("corruptions", res.corruptions), ("leaks", res.leaks),
                     ("corruptions-fixed", res.corruptions_fixed),
                     ("leaks-fixed", res.leaks_fixed),
                     ("allocated-clusters", res.allocated_clusters),
                     ("fragmented-clusters", res.fragmented_clusters),
                     ("compressed-clusters", res.compressed_clusters)):
        if val:
            d[key] = val
    d["filename"] = filename
    d["format"] = fmt
    return d


def _print_check(res, quiet: bool) -> None:
    if quiet:
        return
    if not res.corruptions and not res.leaks and not res.check_errors:
        print("No errors were found on the image.")
    else:
        if res.corruptions:
            print(f"\n{res.corruptions} errors were found on the image.\n"
                  "Data may be corrupted, or further writes to the image may corrupt it.")
        if res.leaks:
            print(f"\n{res.leaks} leaked clusters were found on the image.\n"
                  "This means waste of disk space, but no harm to data.")
        if res.check_errors:
            print(f"\n{res.check_errors} internal errors have occurred during the check.")
    if res.total_clusters and res.allocated_clusters:
        a = res.allocated_clusters
        print(f"{a}/{res.total_clusters} = {a * 100.0 / res.total_clusters:0.2f}% allocated, "
              f"{res.fragmented_clusters * 100.0 / a:0.2f}% fragmented, "
              f"{res.compressed_clusters * 100.0 / a:0.2f}% compressed clusters")
    if res.image_end_offset:
        print(f"Image end offset: {res.image_end_offset}")


def _status(res) -> int:
    if res.check_errors:
        return 1
    if res.corruptions:
        return 2
    if res.leaks:
        return 3
    return 0


def _report_unopenable(err: ImgError, repair: str | None, output: str, filename: str) -> int:
    """Metadata too broken to open the image (a table outside the file, a misaligned
    refcount block): that is a corruption, status 2, as qemu-img reports it.  Repair
    would need the refcount structure rebuilt from scratch, which pemu-img does not do."""
    print(f"ERROR {err}", file=sys.stderr)
    if repair:
        print("pemu-img: the image cannot be repaired: its metadata cannot be walked",
              file=sys.stderr)
    if output == "json":
        print(json.dumps({"check-errors": 0, "corruptions": 1, "filename": filename,
                          "format": "qcow2"}, indent=4))
    else:
        print("\n1 errors were found on the image.\n"
              "Data may be corrupted, or further writes to the image may corrupt it.")
    return 2


def cmd_check(argv: list[str]) -> int:
    opts, args = getopts(argv, "f:hr:T:qU", ["output=", "repair=", "object=", "force-share",
                                              "image-opts"])
    fmt, output, repair, quiet = None, "human", None, False
    secrets = Secrets()
    for o, v in opts:
        if o == "-f":
            fmt = v
        elif o == "--output":
            output = v
        elif o in ("-r", "--repair"):
            if v not in ("leaks", "all"):
                raise ImgError(f"Unknown option value for -r (expecting 'leaks' or 'all'): {v}")
            repair = v
        elif o == "-q":
            quiet = True
        elif o == "--object":
            secrets.add_object(v)
    if len(args) != 1:
        raise ImgError("Expecting one image file name")
    filename = args[0]
    try:
        node = open_img(filename, fmt, read_only=repair is None, secrets=secrets,
                        options={"check-mode": "on", "no-io": "on"}, open_backing=False)
    except ImgError as e:
        if not e.corrupt:
            raise
        return _report_unopenable(e, repair, output, filename)
    try:
        if node.format_name != "qcow2":
            raise ImgError("This image format does not support checks", status=63)
        try:
            res = check_image(node, repair=repair)
        except BlockError as e:
            raise ImgError(f"Check failed: {e}", status=1) from None
        for m in res.messages:
            print(m, file=sys.stderr)
        if repair and (res.corruptions_fixed or res.leaks_fixed):
            if output == "human" and not quiet:
                print("The following inconsistencies were found and repaired:\n\n"
                      f"    {res.leaks_fixed} leaked clusters\n"
                      f"    {res.corruptions_fixed} corruptions\n\n"
                      "Double checking the fixed image now...")
            fixed_leaks, fixed_corr = res.leaks_fixed, res.corruptions_fixed
            res = check_image(node)
            res.leaks_fixed, res.corruptions_fixed = fixed_leaks, fixed_corr
            for m in res.messages:
                print(m, file=sys.stderr)
        if output == "json":
            print(json.dumps(_check_dict(res, filename, node.format_name), indent=4))
        else:
            _print_check(res, quiet)
        return _status(res)
    finally:
        node.close()
