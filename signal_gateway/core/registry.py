"""The city registry: which signalised intersections exist, their signal groups and conflicts.

Pure: stdlib and PyYAML only, no asyncio, MQTT or web. The registry is read once at start-up
from a YAML file and never changes while the gateway runs.

YAML format::

    city: Yantai
    bbox: [120.95, 37.30, 121.75, 37.65]   # west, south, east, north; default: the Yantai box
    intersections:
      - id: YT001                           # ID_PATTERN: two capitals and at least three digits
        name_zh: 南大街与胜利路交叉口
        name_en: Nan Dajie & Shengli Lu
        district: 芝罘区
        lat: 37.536701                      # must lie inside ``bbox``
        lon: 121.392281
        j2735_id: 12111                     # optional, 0..65535, unique
        groups:                             # at least one; sg unique within the intersection
          - {sg: 1, approach: W, movement: left}        # approach N/E/S/W
          - {sg: 2, approach: E, movement: straight}    # straight/left/right/pedestrian
        conflicts: [[1, 2]]                 # optional; REPLACES the derived rule below

Every problem in a file is collected in one pass and raised together as a ``ConfigError`` whose
messages name the entry, the field, the value and why, e.g.
``YT017.groups[3].movement: 'diagonal' is not one of straight, left, right, pedestrian``.
Entries are counted from 0 (``entry 19`` is ``intersections[19]``).

Conflict rule (``derive_conflicts``), used unless an intersection lists ``conflicts``:

* The axis of a vehicle group is NS for approaches N and S, EW for E and W.
* A pedestrian group on arm X crosses that arm, so it runs with the other axis: a crossing of
  the N or S arm runs with EW, a crossing of the E or W arm runs with NS.
* Two pedestrian groups never conflict.
* Two vehicle groups conflict if their axes differ. On the same axis they conflict iff exactly one
  of them is ``left`` and they come from opposite approaches (N-left conflicts with S-straight and
  S-right; N-left with N-straight does not; two lefts do not; two non-lefts do not).
* A pedestrian group conflicts with a vehicle group if the vehicle's axis differs from the axis
  the pedestrians run with, or if the vehicle turns left.
* Right turns are permissive: they run with the pedestrians crossing the arm they turn into and
  must yield to them (Chinese practice), so a right turn does not conflict with those pedestrians.

Stage template (``stages``), used by the simulator: A = NS straight and right plus pedestrians
running with NS; B = NS left; C = EW straight and right plus pedestrians running with EW;
D = EW left; empty stages are skipped. Under the rule above no stage holds two conflicting groups.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import TypeGuard

import yaml

from signal_gateway.core.model import Approach, Intersection, Movement, SignalGroup

__all__ = [
    "DEFAULT_CITY",
    "ID_PATTERN",
    "YANTAI_BBOX",
    "ConfigError",
    "Registry",
    "derive_conflicts",
    "load_registry",
    "parse_registry",
    "stages",
]

ID_PATTERN = re.compile(r"^[A-Z]{2}\d{3,}$")
"""Intersection ids: a two-letter city prefix and at least three digits (Yantai: YT001)."""

DEFAULT_CITY = "Yantai"
YANTAI_BBOX: tuple[float, float, float, float] = (120.95, 37.30, 121.75, 37.65)
"""West, south, east, north of Yantai's urban districts; the default city box."""

# SAE J2735 SignalGroupID is 0..255 with 0 meaning "not available", so a real group is 1..255.
SG_MIN, SG_MAX = 1, 255
# SAE J2735 IntersectionID is INTEGER (0..65535).
J2735_ID_MIN, J2735_ID_MAX = 0, 65535

_TOP_FIELDS = ("city", "bbox", "intersections")
_ENTRY_FIELDS = (
    "id",
    "name_zh",
    "name_en",
    "district",
    "lat",
    "lon",
    "groups",
    "j2735_id",
    "conflicts",
)
_GROUP_FIELDS = ("sg", "approach", "movement")

_NS = frozenset({Approach.N, Approach.S})
_OPPOSITE = {
    Approach.N: Approach.S,
    Approach.S: Approach.N,
    Approach.E: Approach.W,
    Approach.W: Approach.E,
}

Bbox = tuple[float, float, float, float]


# --------------------------------------------------------------------------- conflict rule


def _vehicle_axis(approach: Approach) -> str:
    return "NS" if approach in _NS else "EW"


def _pedestrian_axis(approach: Approach) -> str:
    # A crossing of the N or S arm is walked while EW traffic runs, and vice versa.
    return "EW" if approach in _NS else "NS"


def _axis(group: SignalGroup) -> str:
    if group.movement is Movement.PEDESTRIAN:
        return _pedestrian_axis(group.approach)
    return _vehicle_axis(group.approach)


def _conflict(a: SignalGroup, b: SignalGroup) -> bool:
    a_ped = a.movement is Movement.PEDESTRIAN
    b_ped = b.movement is Movement.PEDESTRIAN
    if a_ped and b_ped:
        return False
    if a_ped or b_ped:
        ped, vehicle = (a, b) if a_ped else (b, a)
        return _axis(vehicle) != _axis(ped) or vehicle.movement is Movement.LEFT
    if _axis(a) != _axis(b):
        return True
    one_left = (a.movement is Movement.LEFT) != (b.movement is Movement.LEFT)
    return one_left and _OPPOSITE[a.approach] is b.approach


def derive_conflicts(groups: Sequence[SignalGroup]) -> frozenset[frozenset[int]]:
    """The pairs of sg that may never be green together under the documented axis rule."""
    pairs: set[frozenset[int]] = set()
    for i, a in enumerate(groups):
        for b in groups[i + 1 :]:
            if a.sg != b.sg and _conflict(a, b):
                pairs.add(frozenset((a.sg, b.sg)))
    return frozenset(pairs)


def stages(intersection: Intersection) -> tuple[tuple[int, ...], ...]:
    """The standard stage template A (NS through), B (NS left), C (EW through), D (EW left)."""
    template: dict[str, list[int]] = {"A": [], "B": [], "C": [], "D": []}
    for group in intersection.groups:
        axis = _axis(group)
        if group.movement is Movement.LEFT:
            key = "B" if axis == "NS" else "D"
        else:
            key = "A" if axis == "NS" else "C"
        template[key].append(group.sg)
    return tuple(tuple(sgs) for sgs in template.values() if sgs)


# --------------------------------------------------------------------------- registry


class Registry:
    """An immutable, ordered collection of the city's intersections, looked up by id."""

    __slots__ = ("_by_id", "_by_j2735", "_city", "_city_bbox", "_ids", "_intersections")

    def __init__(
        self,
        intersections: Iterable[Intersection],
        *,
        city: str = DEFAULT_CITY,
        city_bbox: Bbox = YANTAI_BBOX,
    ) -> None:
        """Index ``intersections`` (in order); raises ValueError on a repeated id or j2735_id."""
        items = tuple(intersections)
        by_id: dict[str, Intersection] = {}
        by_j2735: dict[int, Intersection] = {}
        for ix in items:
            if ix.id in by_id:
                raise ValueError(f"duplicate intersection id {ix.id!r}")
            by_id[ix.id] = ix
            if ix.j2735_id is not None:
                if ix.j2735_id in by_j2735:
                    first = by_j2735[ix.j2735_id].id
                    raise ValueError(f"{ix.id}: j2735_id {ix.j2735_id} is already used by {first}")
                by_j2735[ix.j2735_id] = ix
        self._intersections = items
        self._ids = tuple(by_id)
        self._by_id = MappingProxyType(by_id)
        self._by_j2735 = MappingProxyType(by_j2735)
        self._city = city
        west, south, east, north = city_bbox
        self._city_bbox: Bbox = (float(west), float(south), float(east), float(north))

    @property
    def city(self) -> str:
        """The city's name, e.g. ``Yantai``."""
        return self._city

    @property
    def city_bbox(self) -> Bbox:
        """The city box (west, south, east, north) every intersection lies in."""
        return self._city_bbox

    @property
    def ids(self) -> tuple[str, ...]:
        """All intersection ids in registry order."""
        return self._ids

    def __getitem__(self, intersection_id: str) -> Intersection:
        """The intersection with this id; KeyError if there is none."""
        return self._by_id[intersection_id]

    def get(self, intersection_id: str) -> Intersection | None:
        """The intersection with this id, or None."""
        return self._by_id.get(intersection_id)

    def __contains__(self, item: object) -> bool:
        """True for a known id, or for an Intersection equal to the registry's entry of its id."""
        if isinstance(item, str):
            return item in self._by_id
        if isinstance(item, Intersection):
            return self._by_id.get(item.id) == item
        return False

    def __iter__(self) -> Iterator[Intersection]:
        """The intersections (not the ids) in registry order."""
        return iter(self._intersections)

    def __len__(self) -> int:
        """The number of intersections."""
        return len(self._intersections)

    def __repr__(self) -> str:
        """A short description naming the city and the number of intersections."""
        return f"<Registry {self._city}: {len(self._intersections)} intersections>"

    def by_j2735_id(self, j2735_id: int) -> Intersection | None:
        """The intersection whose J2735 IntersectionID is ``j2735_id``, or None."""
        return self._by_j2735.get(j2735_id)

    def in_bbox(self, west: float, south: float, east: float, north: float) -> tuple[str, ...]:
        """Ids of the intersections inside the box, edges included, in registry order."""
        return tuple(
            ix.id
            for ix in self._intersections
            if west <= ix.lon <= east and south <= ix.lat <= north
        )


# --------------------------------------------------------------------------- loading


class ConfigError(Exception):
    """The registry file is unusable; ``problems`` lists every problem found, one per line.

    Problems do not repeat the file name: it is ``source``, and ``str()`` puts it first.
    """

    def __init__(self, problems: Sequence[str], source: str = "<string>") -> None:
        """Keep ``problems`` (messages naming entry, field, value and why) and the ``source``."""
        self.problems: list[str] = list(problems)
        self.source = source
        count = len(self.problems)
        head = f"{source}: {count} problem{'' if count == 1 else 's'}"
        super().__init__("\n  ".join([head, *self.problems]))


def load_registry(path: str | Path) -> Registry:
    """Read and validate the registry YAML file at ``path``; raises ConfigError."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(["file not found"], source) from None
    except UnicodeDecodeError as exc:
        raise ConfigError([f"not UTF-8 text ({exc.reason})"], source) from None
    except OSError as exc:
        raise ConfigError([f"cannot read ({exc.strerror})"], source) from None
    return parse_registry(text, source)


def parse_registry(text: str, source: str = "<string>") -> Registry:
    """Parse and validate registry YAML ``text``; raises ConfigError listing all problems."""
    problems: list[str] = []
    document = _load_yaml(text, problems)
    if document is _UNREADABLE:
        raise ConfigError(problems, source)
    registry = _Parser(problems).document(document)
    if problems or registry is None:
        raise ConfigError(problems, source)
    return registry


_UNREADABLE = object()


def _load_yaml(text: str, problems: list[str]) -> object:
    """The YAML document in ``text`` (None if empty), or _UNREADABLE after a syntax error."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_duplicate_keys(node, problems)
        document: object = loader.construct_document(node)
        return document
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        what = exc.problem or exc.context or "unreadable"
        problems.append(f"{where}YAML syntax error: {what}")
    except yaml.YAMLError as exc:
        problems.append(f"YAML syntax error: {exc}")
    finally:
        loader.dispose()
    return _UNREADABLE


def _check_duplicate_keys(root: yaml.Node, problems: list[str]) -> None:
    # PyYAML silently keeps the last of two equal keys; a repeated ``lat`` must not pass unseen.
    seen_nodes: set[int] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if id(node) in seen_nodes:
            continue
        seen_nodes.add(id(node))
        if isinstance(node, yaml.MappingNode):
            keys: dict[tuple[str, str], int] = {}
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode):
                    line = key.start_mark.line + 1
                    spelling = (key.tag, key.value)
                    if spelling in keys:
                        problems.append(
                            f"line {line}: duplicate key {key.value!r}"
                            f" (first at line {keys[spelling]})"
                        )
                    else:
                        keys[spelling] = line
                stack.extend((key, value))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)


def _show(value: object) -> str:
    """A value as a problem message quotes it: YAML spelling for null and booleans."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _is_number(value: object) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _fmt_bound(value: float) -> str:
    return f"{value:.2f}" if round(value, 2) == value else repr(value)


class _Parser:
    """Turns the loaded YAML document into a Registry, appending every problem it finds."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems

    def document(self, doc: object) -> Registry | None:
        if not isinstance(doc, dict):
            shown = "an empty document" if doc is None else f"a {type(doc).__name__}"
            self.problems.append(
                f"top level: expected a mapping with city, bbox and intersections, got {shown}"
            )
            return None
        for key in doc:
            if key not in _TOP_FIELDS:
                self.problems.append(
                    f"top level: unknown field {_show(key)} (expected {', '.join(_TOP_FIELDS)})"
                )
        city = self._city(doc.get("city", DEFAULT_CITY))
        bbox = self._bbox(doc["bbox"]) if "bbox" in doc else YANTAI_BBOX
        if "intersections" not in doc:
            self.problems.append("intersections: missing (the list of intersections)")
            return None
        entries = doc["intersections"]
        if not isinstance(entries, list):
            self.problems.append(f"intersections: {_show(entries)} is not a list")
            return None
        if not entries:
            self.problems.append("intersections: empty (a registry needs at least one)")
            return None
        intersections = self._entries(entries, bbox)
        if city is None:
            return None
        return Registry(intersections, city=city, city_bbox=bbox or YANTAI_BBOX)

    def _city(self, value: object) -> str | None:
        if not isinstance(value, str) or not value.strip():
            self.problems.append(f"city: {_show(value)} is not a non-empty string")
            return None
        return value

    def _bbox(self, value: object) -> Bbox | None:
        why = "is not a list [west, south, east, north] of four numbers"
        if not isinstance(value, list) or len(value) != 4 or not all(map(_is_number, value)):
            self.problems.append(f"bbox: {_show(value)} {why}")
            return None
        west, south, east, north = (float(v) for v in value)
        if not (-180 <= west < east <= 180 and -90 <= south < north <= 90):
            self.problems.append(
                f"bbox: {_show(value)} is not a box: need -180 <= west < east <= 180"
                " and -90 <= south < north <= 90"
            )
            return None
        return (west, south, east, north)

    def _entries(self, entries: list[object], bbox: Bbox | None) -> list[Intersection]:
        first_at: dict[str, int] = {}
        j2735_owner: dict[int, str] = {}
        result: list[Intersection] = []
        for index, entry in enumerate(entries):
            if not isinstance(entry, dict):
                self.problems.append(f"entry {index}: {_show(entry)} is not a mapping")
                continue
            raw_id = entry.get("id")
            valid_id = isinstance(raw_id, str) and ID_PATTERN.match(raw_id) is not None
            label = raw_id if valid_id and isinstance(raw_id, str) else f"entry {index}"
            before = len(self.problems)
            if valid_id and isinstance(raw_id, str):
                if raw_id in first_at:
                    self.problems.append(
                        f"{raw_id}: duplicate id (first defined at entry {first_at[raw_id]})"
                    )
                else:
                    first_at[raw_id] = index
            ix = self._entry(entry, label, bbox)
            j2735_id = entry.get("j2735_id")
            if _is_int(j2735_id):
                if j2735_id in j2735_owner:
                    self.problems.append(
                        f"{label}.j2735_id: {j2735_id} is already used by {j2735_owner[j2735_id]}"
                    )
                else:
                    j2735_owner[j2735_id] = label
            if ix is not None and len(self.problems) == before:
                result.append(ix)
        return result

    def _text(self, entry: dict[object, object], label: str, field: str) -> str | None:
        if field not in entry:
            self.problems.append(f"{label}.{field}: missing")
            return None
        value = entry[field]
        if not isinstance(value, str):
            self.problems.append(f"{label}.{field}: {_show(value)} is not a string")
            return None
        if not value.strip():
            self.problems.append(f"{label}.{field}: {_show(value)} is empty")
            return None
        return value

    def _coordinate(
        self, entry: dict[object, object], label: str, field: str, bounds: tuple[float, float]
    ) -> float | None:
        if field not in entry:
            self.problems.append(f"{label}.{field}: missing")
            return None
        value = entry[field]
        if not _is_number(value):
            self.problems.append(f"{label}.{field}: {_show(value)} is not a number")
            return None
        low, high = bounds
        if math.isnan(value) or not low <= value <= high:
            self.problems.append(
                f"{label}.{field}: {_show(value)} is outside the city"
                f" ({_fmt_bound(low)}..{_fmt_bound(high)})"
            )
            return None
        return float(value)

    def _entry(
        self, entry: dict[object, object], label: str, bbox: Bbox | None
    ) -> Intersection | None:
        raw_id = entry.get("id")
        if "id" not in entry:
            self.problems.append(f"{label}.id: missing")
        elif not isinstance(raw_id, str):
            self.problems.append(f"{label}.id: {_show(raw_id)} is not a string")
        elif ID_PATTERN.match(raw_id) is None:
            self.problems.append(
                f"{label}.id: {_show(raw_id)} does not match the id pattern {ID_PATTERN.pattern}"
            )
        name_zh = self._text(entry, label, "name_zh")
        name_en = self._text(entry, label, "name_en")
        district = self._text(entry, label, "district")
        # With an unusable city box only the type of a coordinate can be checked.
        lat_bounds = (bbox[1], bbox[3]) if bbox else (-90.0, 90.0)
        lon_bounds = (bbox[0], bbox[2]) if bbox else (-180.0, 180.0)
        lat = self._coordinate(entry, label, "lat", lat_bounds)
        lon = self._coordinate(entry, label, "lon", lon_bounds)
        groups = self._groups(entry, label)
        j2735_id: int | None = None
        if "j2735_id" in entry:
            value = entry["j2735_id"]
            if not _is_int(value):
                self.problems.append(f"{label}.j2735_id: {_show(value)} is not an integer")
            elif not J2735_ID_MIN <= value <= J2735_ID_MAX:
                self.problems.append(
                    f"{label}.j2735_id: {value} is outside {J2735_ID_MIN}..{J2735_ID_MAX}"
                )
            else:
                j2735_id = value
        conflicts = self._conflicts(entry, label, groups)
        for key in entry:
            if key not in _ENTRY_FIELDS:
                self.problems.append(
                    f"{label}.{key}: unknown field (expected {', '.join(_ENTRY_FIELDS)})"
                )
        if (
            not isinstance(raw_id, str)
            or name_zh is None
            or name_en is None
            or district is None
            or lat is None
            or lon is None
            or groups is None
            or conflicts is None
        ):
            return None
        return Intersection(
            id=raw_id,
            name_zh=name_zh,
            name_en=name_en,
            district=district,
            lat=lat,
            lon=lon,
            groups=groups,
            conflicts=conflicts,
            j2735_id=j2735_id,
        )

    def _groups(self, entry: dict[object, object], label: str) -> tuple[SignalGroup, ...] | None:
        if "groups" not in entry:
            self.problems.append(f"{label}.groups: missing")
            return None
        raw = entry["groups"]
        if not isinstance(raw, list):
            self.problems.append(f"{label}.groups: {_show(raw)} is not a list")
            return None
        if not raw:
            self.problems.append(f"{label}.groups: empty (an intersection needs at least one)")
            return None
        groups: list[SignalGroup] = []
        seen: set[int] = set()
        ok = True
        for index, item in enumerate(raw):
            where = f"{label}.groups[{index}]"
            group = self._group(item, where)
            if group is None:
                ok = False
                continue
            if group.sg in seen:
                self.problems.append(f"{label}.groups: sg {group.sg} is listed twice")
                ok = False
            seen.add(group.sg)
            groups.append(group)
        return tuple(groups) if ok else None

    def _group(self, item: object, where: str) -> SignalGroup | None:
        if not isinstance(item, dict):
            self.problems.append(
                f"{where}: {_show(item)} is not a mapping with {', '.join(_GROUP_FIELDS)}"
            )
            return None
        before = len(self.problems)
        sg = item.get("sg")
        if "sg" not in item:
            self.problems.append(f"{where}.sg: missing")
        elif not _is_int(sg):
            self.problems.append(f"{where}.sg: {_show(sg)} is not an integer")
        elif not SG_MIN <= sg <= SG_MAX:
            self.problems.append(f"{where}.sg: {sg} is outside {SG_MIN}..{SG_MAX}")
        approach = self._choice(item, where, "approach", Approach)
        movement = self._choice(item, where, "movement", Movement)
        for key in item:
            if key not in _GROUP_FIELDS:
                self.problems.append(
                    f"{where}.{key}: unknown field (expected {', '.join(_GROUP_FIELDS)})"
                )
        if len(self.problems) != before or not _is_int(sg):
            return None
        if approach is None or movement is None:
            return None
        return SignalGroup(sg=sg, approach=Approach(approach), movement=Movement(movement))

    def _choice(
        self,
        item: dict[object, object],
        where: str,
        field: str,
        choices: type[Approach] | type[Movement],
    ) -> str | None:
        allowed = [member.value for member in choices]
        if field not in item:
            self.problems.append(f"{where}.{field}: missing")
            return None
        value = item[field]
        if value not in allowed or not isinstance(value, str):
            self.problems.append(
                f"{where}.{field}: {_show(value)} is not one of {', '.join(allowed)}"
            )
            return None
        return value

    def _conflicts(
        self,
        entry: dict[object, object],
        label: str,
        groups: tuple[SignalGroup, ...] | None,
    ) -> frozenset[frozenset[int]] | None:
        if "conflicts" not in entry:
            return derive_conflicts(groups) if groups is not None else None
        raw = entry["conflicts"]
        if not isinstance(raw, list):
            self.problems.append(f"{label}.conflicts: {_show(raw)} is not a list of [sg, sg] pairs")
            return None
        if not raw:
            self.problems.append(
                f"{label}.conflicts: empty list would let every group be green together;"
                " omit the field to use the derived rule"
            )
            return None
        known = {group.sg for group in groups} if groups is not None else None
        pairs: set[frozenset[int]] = set()
        ok = True
        for index, pair in enumerate(raw):
            where = f"{label}.conflicts[{index}]"
            if not isinstance(pair, list) or len(pair) != 2 or not all(map(_is_int, pair)):
                self.problems.append(f"{where}: {_show(pair)} is not a pair [sg, sg] of integers")
                ok = False
                continue
            a, b = pair
            if a == b:
                self.problems.append(f"{where}: {_show(pair)} pairs sg {a} with itself")
                ok = False
                continue
            for sg in (a, b):
                if known is not None and sg not in known:
                    self.problems.append(f"{where}: sg {sg} is not a group of this intersection")
                    ok = False
            pairs.add(frozenset((a, b)))
        if not ok or groups is None:
            return None
        return frozenset(pairs)
