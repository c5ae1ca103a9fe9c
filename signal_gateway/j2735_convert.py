"""``signal-gateway convert j2735 FILE``: what the gateway makes of a file of decoded J2735 SPaT.

Owns reading such a file (one JSON record, a JSON array of records, or NDJSON: one record per
line; a record is an ODE SPaT record or its bare ``payload.data``) and printing, for every
intersection and movement, our state and absolute end times (Unix ms and ISO-8601 UTC, "unknown"
when None), the time reference each intersection was read against, and every rejection: a
debugging aid for a city's feed. Output is a table, or JSON with ``json_output``.

Must not touch: the decoding rules (all in ``signal_gateway.ingest.j2735``), the core's live
judgement (``City``: staleness, clock offsets, when a number is shown), the network.

Exit codes: 0 every intersection state converted; 1 at least one rejection; 2 the file or the
registry file could not be read.
"""

from __future__ import annotations

import json
import sys
import time
from typing import TextIO

from signal_gateway.core.model import Rejection, SpatReport
from signal_gateway.ingest.j2735 import (
    J2735Lookup,
    OdeGroup,
    OdeIntersection,
    decode_ode,
    iso_ms,
    load_json,
)

EXIT_OK = 0
EXIT_REJECTIONS = 1
EXIT_UNREADABLE = 2

_REFERENCE_NOTES = {
    "moy": "from moy + timeStamp in the message",
    "odeReceivedAt": "no usable moy + timeStamp in the message",
    "receive time": "no moy + timeStamp, no odeReceivedAt: the time of this run",
}


def read_records(text: str) -> list[tuple[str, object | Rejection]]:
    """The records of a file as (label, JSON document or Rejection): object, array or NDJSON."""
    whole = load_json(text.encode("utf-8"), max_bytes=len(text.encode("utf-8")) + 1)
    lines = [(number, line) for number, line in enumerate(text.splitlines(), 1) if line.strip()]
    if not isinstance(whole, Rejection):
        if isinstance(whole, list):
            return [(f"record {index}", item) for index, item in enumerate(whole, 1)]
        return [("record 1", whole)]
    if len(lines) <= 1:
        return [("file", whole)]
    records: list[tuple[str, object | Rejection]] = []
    for number, line in lines:
        encoded = line.encode("utf-8")
        records.append((f"line {number}", load_json(encoded, max_bytes=len(encoded) + 1)))
    return records


def convert_command(
    path: str,
    out: TextIO,
    *,
    json_output: bool = False,
    registry_path: str | None = None,
    now_ms: int | None = None,
) -> int:
    """Print what the gateway makes of the J2735 SPaT records in ``path``; return the exit code.

    Without ``registry_path`` every intersection is named ``J2735-<id>``, so any city's file
    converts. ``now_ms`` (default: the wall clock) is the time reference only for a record that
    has neither moy + timeStamp nor ``metadata.odeReceivedAt``.
    """
    registry: J2735Lookup | None = None
    if registry_path is not None:
        from signal_gateway.core.registry import ConfigError, load_registry

        try:
            registry = load_registry(registry_path)
        except ConfigError as exc:
            for problem in exc.problems:
                print(f"{registry_path}: {problem}", file=sys.stderr)
            return EXIT_UNREADABLE
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except (OSError, UnicodeDecodeError) as exc:
        print(f"{path}: cannot read ({exc})", file=sys.stderr)
        return EXIT_UNREADABLE
    now = time.time_ns() // 1_000_000 if now_ms is None else now_ms
    decoded: list[tuple[str, OdeIntersection]] = []
    for label, document in read_records(text):
        if isinstance(document, Rejection):
            decoded.append((label, OdeIntersection(None, None, document)))
            continue
        decoded.extend((label, item) for item in decode_ode(document, now, registry))
    rejected = sum(isinstance(item.result, Rejection) for _, item in decoded)
    if json_output:
        body = {
            "file": path,
            "intersections": [_as_json(label, item) for label, item in decoded],
            "converted": len(decoded) - rejected,
            "rejected": rejected,
        }
        out.write(json.dumps(body, indent=2, ensure_ascii=False) + "\n")
    else:
        _print_table(path, decoded, rejected, out)
    return EXIT_REJECTIONS if rejected else EXIT_OK


def _time(ms: int | None, ts_ms: int) -> str:
    if ms is None:
        return "unknown"
    return f"{ts_ms + ms} {iso_ms(ts_ms + ms)}"


def _print_table(
    path: str, decoded: list[tuple[str, OdeIntersection]], rejected: int, out: TextIO
) -> None:
    for label, item in decoded:
        head = f"{label}: J2735 intersection {item.j2735_id if item.j2735_id is not None else '?'}"
        result = item.result
        if isinstance(result, Rejection):
            out.write(f"{head}\n  REJECTED [{result.reason}] {result.message}\n\n")
            continue
        out.write(f"{head} -> {result.intersection_id}\n")
        reference = item.reference
        if reference is not None:
            note = _REFERENCE_NOTES.get(reference.source, reference.source)
            out.write(
                f"  time reference: {reference.source} {iso_ms(reference.ms)} = {reference.ms} ms"
                f" ({note})\n"
            )
        flags = ", ".join(sorted(item.flags)) or "none set"
        out.write(f"  mode: {result.mode.value} (status flags: {flags}); seq {result.seq}\n")
        rows = [("sg", "eventState", "state", "min end", "max end", "likely end", "confidence")]
        rows.extend(_row(group, result) for group in item.movements)
        widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
        for row in rows:
            cells = [
                cell.rjust(widths[0]) if i == 0 else cell.ljust(widths[i])
                for i, cell in enumerate(row)
            ]
            out.write("  " + "  ".join(cells).rstrip() + "\n")
        out.write("\n")
    converted = len(decoded) - rejected
    out.write(f"{path}: {converted} intersection state(s) converted, {rejected} rejected\n")


def _row(group: OdeGroup, report: SpatReport) -> tuple[str, str, str, str, str, str, str]:
    reading = group.reading
    if reading is None:
        return (str(group.sg), group.event_state.value, "unknown (left out)", "-", "-", "-", "-")
    ts = report.ts_ms
    confidence = "unknown" if reading.confidence is None else f"{reading.confidence}%"
    return (
        str(group.sg),
        group.event_state.value,
        reading.state.value,
        _time(reading.min_ms, ts),
        _time(reading.max_ms, ts),
        _time(reading.likely_ms, ts),
        confidence,
    )


def _as_json(label: str, item: OdeIntersection) -> dict[str, object]:
    result = item.result
    reference = item.reference
    body: dict[str, object] = {
        "record": label,
        "j2735_id": item.j2735_id,
        "intersection_id": result.intersection_id,
        "reference": None
        if reference is None
        else {"source": reference.source, "ms": reference.ms, "iso": iso_ms(reference.ms)},
        "status_flags": sorted(item.flags),
    }
    if isinstance(result, Rejection):
        body["rejection"] = {"reason": result.reason, "message": result.message}
        return body
    movements: list[dict[str, object]] = []
    for group in item.movements:
        reading = group.reading
        entry: dict[str, object] = {"sg": group.sg, "eventState": group.event_state.value}
        if reading is None:
            entry["state"] = None
        else:
            entry["state"] = reading.state.value
            for name, relative in (
                ("min_end", reading.min_ms),
                ("max_end", reading.max_ms),
                ("likely_end", reading.likely_ms),
            ):
                absolute = None if relative is None else result.ts_ms + relative
                entry[f"{name}_ms"] = absolute
                entry[name] = None if absolute is None else iso_ms(absolute)
            entry["confidence"] = reading.confidence
        movements.append(entry)
    body.update(mode=result.mode.value, seq=result.seq, ts_ms=result.ts_ms, movements=movements)
    body["rejection"] = None
    return body
