"""The city registry: the shipped Yantai file, validation messages, conflict rule, stages."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from signal_gateway.core.model import Approach, Intersection, Movement, SignalGroup
from signal_gateway.core.registry import (
    YANTAI_BBOX,
    ConfigError,
    Registry,
    derive_conflicts,
    load_registry,
    parse_registry,
    stages,
)

SHIPPED = Path(__file__).resolve().parent.parent / "intersections.yaml"

N, E, S, W = Approach.N, Approach.E, Approach.S, Approach.W
STRAIGHT, LEFT, RIGHT, PED = Movement.STRAIGHT, Movement.LEFT, Movement.RIGHT, Movement.PEDESTRIAN


@pytest.fixture(scope="module")
def shipped() -> Registry:
    """The registry shipped in the repository."""
    return load_registry(SHIPPED)


def _arms(ix: Intersection) -> set[Approach]:
    return {group.approach for group in ix.groups}


def _entry(ident: str = "YT001", **overrides: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "id": ident,
        "name_zh": "南大街与胜利路交叉口",
        "name_en": "Nan Dajie & Shengli Lu",
        "district": "芝罘区",
        "lat": 37.5367,
        "lon": 121.3923,
        "groups": [
            {"sg": 1, "approach": "N", "movement": "straight"},
            {"sg": 2, "approach": "N", "movement": "left"},
            {"sg": 3, "approach": "E", "movement": "straight"},
            {"sg": 4, "approach": "S", "movement": "straight"},
        ],
    }
    entry.update(overrides)
    return entry


def _doc(*entries: dict[str, Any], **top: Any) -> str:
    doc: dict[str, Any] = {"city": "Yantai", "intersections": list(entries)}
    doc.update(top)
    return yaml.safe_dump(doc, allow_unicode=True, sort_keys=False)


def _many(count: int) -> list[dict[str, Any]]:
    return [_entry(f"YT{n:03d}") for n in range(1, count + 1)]


def _problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_registry(text)
    return info.value.problems


def _g(sg: int, approach: Approach, movement: Movement) -> SignalGroup:
    return SignalGroup(sg, approach, movement)


# --------------------------------------------------------------------------- the shipped file


def test_shipped_file_has_235_intersections(shipped: Registry) -> None:
    """The shipped Yantai file loads without problems and holds 235 intersections."""
    assert len(shipped) == 235
    assert shipped.city == "Yantai"
    assert shipped.city_bbox == YANTAI_BBOX


def test_shipped_ids_run_yt001_to_yt235(shipped: Registry) -> None:
    """The ids are YT001..YT235 in order."""
    assert shipped.ids == tuple(f"YT{n:03d}" for n in range(1, 236))


def test_shipped_four_arm_crossings_have_8_to_12_groups(shipped: Registry) -> None:
    """Four-arm crossings have 8-12 groups, T-junctions 5-7; about a quarter are T-junctions."""
    fours = [ix for ix in shipped if len(_arms(ix)) == 4]
    tees = [ix for ix in shipped if len(_arms(ix)) == 3]
    assert len(fours) + len(tees) == 235
    assert all(8 <= len(ix.groups) <= 12 for ix in fours)
    assert all(5 <= len(ix.groups) <= 7 for ix in tees)
    assert 0.2 <= len(tees) / 235 <= 0.3


def test_shipped_names_are_unique(shipped: Registry) -> None:
    """No two intersections share a Chinese or an English name."""
    assert len({ix.name_zh for ix in shipped}) == 235
    assert len({ix.name_en for ix in shipped}) == 235
    assert all(ix.name_zh.endswith("交叉口") and "与" in ix.name_zh for ix in shipped)
    assert all(" & " in ix.name_en for ix in shipped)


def test_shipped_positions_inside_city_with_six_decimals(shipped: Registry) -> None:
    """Every point lies in the Yantai box and the file writes coordinates with 6 decimals."""
    west, south, east, north = YANTAI_BBOX
    assert all(south <= ix.lat <= north and west <= ix.lon <= east for ix in shipped)
    text = SHIPPED.read_text(encoding="utf-8")
    coordinates = re.findall(r"^\s+(?:lat|lon): (\S+)$", text, re.MULTILINE)
    assert len(coordinates) == 2 * 235
    assert all(re.fullmatch(r"\d+\.\d{6}", value) for value in coordinates)
    assert "sample data" in text.lower()


def test_shipped_districts(shipped: Registry) -> None:
    """All five urban districts are present and nothing else."""
    assert {ix.district for ix in shipped} == {"芝罘区", "莱山区", "福山区", "牟平区", "开发区"}


def test_shipped_yt001_matches_the_j2735_sample(shipped: Registry) -> None:
    """YT001 is J2735 intersection 12111, holding the sample's groups; its 2 and 6 may run."""
    ix = shipped.by_j2735_id(12111)
    assert ix is not None
    assert ix.id == "YT001"
    assert {1, 2, 4, 5, 6, 8} <= {group.sg for group in ix.groups}
    assert frozenset({2, 6}) not in ix.conflicts  # the sample shows 2 and 6 green together


def test_shipped_about_ten_j2735_ids(shipped: Registry) -> None:
    """About ten intersections carry a j2735_id, all distinct."""
    with_id = [ix.j2735_id for ix in shipped if ix.j2735_id is not None]
    assert 8 <= len(with_id) <= 12
    assert len(set(with_id)) == len(with_id)


def test_shipped_explicit_conflicts_are_one_or_two_examples(shipped: Registry) -> None:
    """One or two intersections list conflicts explicitly; all others use the derived rule."""
    explicit = [ix.id for ix in shipped if ix.conflicts != derive_conflicts(ix.groups)]
    text = SHIPPED.read_text(encoding="utf-8")
    assert 1 <= len(re.findall(r"^\s+conflicts:", text, re.MULTILINE)) <= 2
    assert len(explicit) <= 2


def test_stage_template_over_the_shipped_file(shipped: Registry) -> None:
    """For all intersections no stage holds two conflicting groups; each group is in one stage."""
    for ix in shipped:
        plan = stages(ix)
        placed = [sg for stage in plan for sg in stage]
        assert sorted(placed) == sorted(group.sg for group in ix.groups), ix.id
        for stage in plan:
            assert stage, ix.id
            for i, a in enumerate(stage):
                for b in stage[i + 1 :]:
                    assert frozenset({a, b}) not in ix.conflicts, (ix.id, a, b)


# --------------------------------------------------------------------------- conflict rule


@pytest.mark.parametrize(
    ("a", "b", "conflict"),
    [
        (_g(1, N, STRAIGHT), _g(2, E, STRAIGHT), True),
        (_g(1, N, RIGHT), _g(2, W, STRAIGHT), True),
        (_g(1, N, STRAIGHT), _g(2, S, STRAIGHT), False),
        (_g(1, N, LEFT), _g(2, S, STRAIGHT), True),
        (_g(1, N, LEFT), _g(2, S, RIGHT), True),
        (_g(1, N, LEFT), _g(2, N, STRAIGHT), False),
        (_g(1, N, LEFT), _g(2, S, LEFT), False),
        (_g(1, E, LEFT), _g(2, W, LEFT), False),
        (_g(1, E, STRAIGHT), _g(2, W, RIGHT), False),
        (_g(1, E, LEFT), _g(2, W, STRAIGHT), True),
        (_g(1, N, LEFT), _g(2, E, LEFT), True),
        (_g(1, N, PED), _g(2, E, PED), False),
        (_g(1, N, PED), _g(2, S, PED), False),
        (_g(1, N, PED), _g(2, E, STRAIGHT), False),
        (_g(1, N, PED), _g(2, W, RIGHT), False),
        (_g(1, N, PED), _g(2, N, STRAIGHT), True),
        (_g(1, N, PED), _g(2, S, RIGHT), True),
        (_g(1, N, PED), _g(2, E, LEFT), True),
        (_g(1, E, PED), _g(2, N, STRAIGHT), False),
        (_g(1, E, PED), _g(2, S, RIGHT), False),
        (_g(1, E, PED), _g(2, W, STRAIGHT), True),
        (_g(1, E, PED), _g(2, N, LEFT), True),
    ],
)
def test_conflict_rule(a: SignalGroup, b: SignalGroup, conflict: bool) -> None:
    """Each pair conflicts exactly as the documented axis rule says, in either order."""
    expected = frozenset({frozenset({1, 2})}) if conflict else frozenset()
    assert derive_conflicts([a, b]) == expected
    assert derive_conflicts([b, a]) == expected


def test_derive_conflicts_full_four_arm_crossing() -> None:
    """A straight+left crossing conflicts across axes and left-vs-opposite, nothing else."""
    groups = [
        _g(1, N, STRAIGHT),
        _g(2, N, LEFT),
        _g(3, S, STRAIGHT),
        _g(4, S, LEFT),
        _g(5, E, STRAIGHT),
    ]
    assert derive_conflicts(groups) == {
        frozenset(pair) for pair in [(1, 4), (2, 3), (1, 5), (2, 5), (3, 5), (4, 5)]
    }


def test_stages_template_order_and_skipping() -> None:
    """Stages are A NS through+peds with NS, B NS left, C EW through+peds with EW, D EW left."""
    groups = (
        _g(1, N, STRAIGHT),
        _g(2, N, LEFT),
        _g(3, S, RIGHT),
        _g(4, E, STRAIGHT),
        _g(5, W, STRAIGHT),
        _g(6, N, PED),
        _g(7, E, PED),
    )
    ix = Intersection("YT900", "甲", "A", "芝罘区", 37.5, 121.4, groups, derive_conflicts(groups))
    assert stages(ix) == ((1, 3, 7), (2,), (4, 5, 6))


# --------------------------------------------------------------------------- the container


def _registry() -> Registry:
    entries = [
        _entry("YT001", lat=37.50, lon=121.30, j2735_id=12111),
        _entry("YT002", lat=37.55, lon=121.40),
        _entry("YT003", lat=37.60, lon=121.50, j2735_id=7),
    ]
    return parse_registry(_doc(*entries))


def test_registry_lookup_and_order() -> None:
    """Lookup by id, get, membership, iteration in file order, len and ids."""
    registry = _registry()
    assert registry["YT002"].lat == 37.55
    assert registry.get("YT004") is None
    with pytest.raises(KeyError):
        registry["YT004"]
    assert "YT003" in registry
    assert "YT004" not in registry
    assert registry["YT001"] in registry
    assert [ix.id for ix in registry] == ["YT001", "YT002", "YT003"]
    assert len(registry) == 3
    assert registry.ids == ("YT001", "YT002", "YT003")


def test_by_j2735_id() -> None:
    """by_j2735_id finds the intersection with that J2735 id, else None."""
    registry = _registry()
    found = registry.by_j2735_id(12111)
    assert found is not None
    assert found.id == "YT001"
    assert registry.by_j2735_id(12112) is None


def test_in_bbox_is_inclusive() -> None:
    """in_bbox returns the ids inside the box, points on its edges included, in order."""
    registry = _registry()
    assert registry.in_bbox(121.30, 37.50, 121.40, 37.55) == ("YT001", "YT002")
    assert registry.in_bbox(121.31, 37.51, 121.60, 37.65) == ("YT002", "YT003")
    assert registry.in_bbox(121.0, 37.3, 121.1, 37.4) == ()


def test_registry_refuses_duplicate_ids() -> None:
    """Building a Registry from two intersections with one id raises ValueError."""
    ix = _registry()["YT001"]
    with pytest.raises(ValueError, match="YT001"):
        Registry([ix, ix])


def test_parse_uses_derived_conflicts_by_default() -> None:
    """Without a conflicts field the intersection holds the derived conflicts."""
    ix = _registry()["YT001"]
    assert ix.conflicts == derive_conflicts(ix.groups)


def test_explicit_conflicts_replace_the_rule() -> None:
    """A conflicts list replaces the derived rule for that intersection only."""
    registry = parse_registry(_doc(_entry("YT001", conflicts=[[1, 3]]), _entry("YT002")))
    assert registry["YT001"].conflicts == frozenset({frozenset({1, 3})})
    assert registry["YT002"].conflicts == derive_conflicts(registry["YT002"].groups)


def test_city_and_bbox_from_the_file() -> None:
    """city and bbox come from the file; coordinates are checked against that bbox."""
    text = _doc(_entry(lat=31.2, lon=121.5), city="Shanghai", bbox=[121.0, 30.7, 122.0, 31.9])
    registry = parse_registry(text)
    assert registry.city == "Shanghai"
    assert registry.city_bbox == (121.0, 30.7, 122.0, 31.9)


def test_default_city_and_bbox() -> None:
    """Without city and bbox the registry is Yantai's with the Yantai box."""
    registry = parse_registry(yaml.safe_dump({"intersections": [_entry()]}))
    assert registry.city == "Yantai"
    assert registry.city_bbox == YANTAI_BBOX


# --------------------------------------------------------------------------- bad input


def test_bad_movement_names_entry_field_and_value() -> None:
    """An unknown movement is reported with entry, group index, field, value and choices."""
    entries = _many(17)
    entries[16]["groups"][3]["movement"] = "diagonal"
    assert _problems(_doc(*entries)) == [
        "YT017.groups[3].movement: 'diagonal' is not one of straight, left, right, pedestrian"
    ]


def test_bad_approach() -> None:
    """An unknown approach is reported with the choices."""
    entry = _entry()
    entry["groups"][0]["approach"] = "NE"
    assert _problems(_doc(entry)) == ["YT001.groups[0].approach: 'NE' is not one of N, E, S, W"]


def test_duplicate_id_names_the_first_entry() -> None:
    """A repeated id is reported with the index of the entry that defined it first."""
    entries = [*_many(20), _entry("YT020")]
    assert _problems(_doc(*entries)) == ["YT020: duplicate id (first defined at entry 19)"]


def test_latitude_outside_the_city() -> None:
    """A latitude outside the city box is reported with the value and the allowed range."""
    entries = _many(31)
    entries[30]["lat"] = 38.9
    assert _problems(_doc(*entries)) == ["YT031.lat: 38.9 is outside the city (37.30..37.65)"]


def test_longitude_outside_a_custom_city_box() -> None:
    """Coordinates are checked against the file's bbox, not the Yantai default."""
    text = _doc(_entry(), bbox=[121.0, 37.0, 121.3, 38.0])
    assert _problems(text) == ["YT001.lon: 121.3923 is outside the city (121.00..121.30)"]


def test_duplicate_sg() -> None:
    """A signal group number listed twice in one intersection is reported."""
    entries = _many(44)
    entries[43]["groups"][1]["sg"] = 3
    assert _problems(_doc(*entries)) == ["YT044.groups: sg 3 is listed twice"]


def test_conflict_with_unknown_sg() -> None:
    """An explicit conflict naming a group the intersection lacks is reported."""
    entries = _many(50)
    entries[49]["conflicts"] = [[1, 99], [1, 2]]
    assert _problems(_doc(*entries)) == [
        "YT050.conflicts[0]: sg 99 is not a group of this intersection"
    ]


def test_malformed_conflicts() -> None:
    """Conflicts must be a non-empty list of pairs of two different integers."""
    assert _problems(_doc(_entry(conflicts=[[1, 2, 3], [2, 2], "1-2"]))) == [
        "YT001.conflicts[0]: [1, 2, 3] is not a pair [sg, sg] of integers",
        "YT001.conflicts[1]: [2, 2] pairs sg 2 with itself",
        "YT001.conflicts[2]: '1-2' is not a pair [sg, sg] of integers",
    ]
    [problem] = _problems(_doc(_entry(conflicts=[])))
    assert problem.startswith("YT001.conflicts: empty list")


def test_missing_fields() -> None:
    """Each missing required field is reported by name."""
    entry = _entry()
    del entry["name_en"], entry["lat"], entry["groups"]
    entry["groups"] = [{"sg": 1, "approach": "N"}]
    assert _problems(_doc(entry)) == [
        "YT001.name_en: missing",
        "YT001.lat: missing",
        "YT001.groups[0].movement: missing",
    ]


def test_wrong_types() -> None:
    """Wrong types are reported with the value as found."""
    entry = _entry(name_zh=5, lat="37.5", lon=True, district="", j2735_id="12111")
    assert _problems(_doc(entry)) == [
        "YT001.name_zh: 5 is not a string",
        "YT001.district: '' is empty",
        "YT001.lat: '37.5' is not a number",
        "YT001.lon: true is not a number",
        "YT001.j2735_id: '12111' is not an integer",
    ]


def test_empty_and_non_list_groups() -> None:
    """An empty or non-list groups field is reported."""
    assert _problems(_doc(_entry(groups=[]))) == [
        "YT001.groups: empty (an intersection needs at least one)"
    ]
    assert _problems(_doc(_entry(groups="N straight"))) == [
        "YT001.groups: 'N straight' is not a list"
    ]
    assert _problems(_doc(_entry(groups=[7]))) == [
        "YT001.groups[0]: 7 is not a mapping with sg, approach, movement"
    ]


def test_non_integer_sg() -> None:
    """A signal group number that is not an integer in 1..255 is reported."""
    entry = _entry()
    entry["groups"][0]["sg"] = "1"
    entry["groups"][1]["sg"] = 2.0
    entry["groups"][2]["sg"] = 0
    assert _problems(_doc(entry)) == [
        "YT001.groups[0].sg: '1' is not an integer",
        "YT001.groups[1].sg: 2.0 is not an integer",
        "YT001.groups[2].sg: 0 is outside 1..255",
    ]


def test_bad_id_format() -> None:
    """An id not matching the pattern is reported under the entry's index."""
    assert _problems(_doc(_entry("yt1"))) == [
        "entry 0.id: 'yt1' does not match the id pattern ^[A-Z]{2}\\d{3,}$"
    ]
    assert _problems(_doc(_entry(id=7))) == ["entry 0.id: 7 is not a string"]


def test_ids_of_other_cities_are_accepted() -> None:
    """Any two-capital prefix with three or more digits is a valid id."""
    registry = parse_registry(_doc(_entry("QD1234")))
    assert registry.ids == ("QD1234",)


def test_duplicate_j2735_id() -> None:
    """Two intersections with one j2735_id are reported, naming the first user."""
    entries = [_entry("YT001", j2735_id=12111), _entry("YT002", j2735_id=12111)]
    assert _problems(_doc(*entries)) == ["YT002.j2735_id: 12111 is already used by YT001"]


def test_j2735_id_out_of_range() -> None:
    """A j2735_id outside 0..65535 is reported."""
    assert _problems(_doc(_entry(j2735_id=70000))) == ["YT001.j2735_id: 70000 is outside 0..65535"]


def test_unknown_fields() -> None:
    """Misspelt fields are reported rather than silently ignored."""
    entry = _entry(j2735id=5)
    entry["groups"][0]["phase"] = 2
    problems = _problems(_doc(entry, cty="Yantai"))
    assert problems[0].startswith("top level: unknown field 'cty'")
    assert problems[1].startswith("YT001.groups[0].phase: unknown field")
    assert problems[2].startswith("YT001.j2735id: unknown field")
    assert len(problems) == 3


def test_top_level_not_a_mapping() -> None:
    """A document that is not a mapping is reported."""
    assert _problems("- YT001\n- YT002\n") == [
        "top level: expected a mapping with city, bbox and intersections, got a list"
    ]
    assert _problems("") == [
        "top level: expected a mapping with city, bbox and intersections, got an empty document"
    ]


def test_intersections_missing_or_not_a_list() -> None:
    """A missing, non-list or empty intersections field is reported."""
    assert _problems("city: Yantai\n") == ["intersections: missing (the list of intersections)"]
    assert _problems("intersections: {YT001: 1}\n") == ["intersections: {'YT001': 1} is not a list"]
    assert _problems("intersections: []\n") == [
        "intersections: empty (a registry needs at least one)"
    ]
    assert _problems("intersections: [5]\n") == ["entry 0: 5 is not a mapping"]


def test_bad_bbox_and_city() -> None:
    """A malformed bbox or city is reported."""
    problems = _problems(_doc(_entry(), city="", bbox=[121.75, 37.3, 120.95, 37.65]))
    assert problems == [
        "city: '' is not a non-empty string",
        "bbox: [121.75, 37.3, 120.95, 37.65] is not a box: need -180 <= west < east <= 180"
        " and -90 <= south < north <= 90",
    ]
    assert _problems(_doc(_entry(), bbox=[1, 2, 3])) == [
        "bbox: [1, 2, 3] is not a list [west, south, east, north] of four numbers"
    ]


def test_yaml_syntax_error_gives_the_line() -> None:
    """A YAML syntax error is reported with its line number."""
    text = "city: Yantai\nintersections:\n  - id: YT001\n    name_zh: [unclosed\n"
    [problem] = _problems(text)
    assert problem.startswith("line 5, column 1: YAML syntax error:")
    [problem] = _problems("city: Yantai\n  bad: indent\n")
    assert re.match(r"line 2, column \d+: YAML syntax error: ", problem)


def test_duplicate_yaml_keys_are_reported() -> None:
    """A key given twice in one mapping is reported with both lines, not silently overwritten."""
    text = _doc(_entry()).replace("  lat: 37.5367\n", "  lat: 37.5367\n  lat: 38.9\n")
    problems = _problems(text)
    assert problems[0] == "line 8: duplicate key 'lat' (first at line 7)"
    assert "YT001.lat: 38.9 is outside the city (37.30..37.65)" in problems


def test_file_not_found(tmp_path: Path) -> None:
    """A missing file raises ConfigError naming the path."""
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError) as info:
        load_registry(missing)
    assert info.value.problems == ["file not found"]
    assert info.value.source == str(missing)
    assert str(info.value) == f"{missing}: 1 problem\n  file not found"


def test_load_registry_reads_a_file(tmp_path: Path) -> None:
    """load_registry accepts str and Path and names the file in the error text."""
    path = tmp_path / "r.yaml"
    path.write_text(_doc(_entry()), encoding="utf-8")
    assert load_registry(str(path)).ids == ("YT001",)
    path.write_text(_doc(_entry(lat=1.0)), encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_registry(path)
    assert str(info.value).startswith(f"{path}: 1 problem\n  YT001.lat: 1.0 is outside")


def test_all_problems_are_reported_together() -> None:
    """Problems in several entries and fields come back in one ConfigError, in file order."""
    entries = _many(5)
    entries[0]["groups"][0]["movement"] = "diagonal"
    entries[1]["lat"] = 38.9
    entries[2]["id"] = "YT001"
    entries[3]["groups"] = []
    entries[4]["conflicts"] = [[1, 99]]
    entries.append(copy.deepcopy(entries[0]) | {"id": "bad"})
    problems = _problems(_doc(*entries))
    assert problems == [
        "YT001.groups[0].movement: 'diagonal' is not one of straight, left, right, pedestrian",
        "YT002.lat: 38.9 is outside the city (37.30..37.65)",
        "YT001: duplicate id (first defined at entry 0)",
        "YT004.groups: empty (an intersection needs at least one)",
        "YT005.conflicts[0]: sg 99 is not a group of this intersection",
        "entry 5.id: 'bad' does not match the id pattern ^[A-Z]{2}\\d{3,}$",
        "entry 5.groups[0].movement: 'diagonal' is not one of straight, left, right, pedestrian",
    ]


def test_config_error_text_lists_every_problem() -> None:
    """str(ConfigError) names the source and lists one problem per line."""
    error = ConfigError(["a: x", "b: y"], "file.yaml")
    assert str(error) == "file.yaml: 2 problems\n  a: x\n  b: y"
    assert error.problems == ["a: x", "b: y"]
