"""Generate ``intersections.yaml``: 235 sample signalised intersections of Yantai.

Deterministic (fixed seed, no network): run once from the repository root with
``python scripts/gen_intersections.py`` and commit the result. Streets are straight lines between
plausible coordinates along Yantai's real arterials; an intersection is the crossing of an
east-west street with a north-south street of the same district. Where a street ends on another
street the crossing is a T-junction. Positions are sample data until the city's survey replaces
them. Vehicle through/left groups follow NEMA numbering (main street through = 2 and 6, its lefts
1 and 5; side street through = 4 and 8, its lefts 7 and 3), so that YT001 matches the real J2735
sample record of intersection 12111 (groups 1, 2, 4, 5, 6, 8); extra groups count on from 9.
"""

from __future__ import annotations

import random
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from signal_gateway.core.model import Approach, Movement, SignalGroup  # noqa: E402
from signal_gateway.core.registry import derive_conflicts, load_registry  # noqa: E402

OUTPUT = ROOT / "intersections.yaml"
SEED = 20240611
TOTAL = 235
T_TARGET = 59  # about a quarter of TOTAL
BBOX = (120.95, 37.30, 121.75, 37.65)
EPS = 1e-9

N, E, S, W = Approach.N, Approach.E, Approach.S, Approach.W
STRAIGHT, LEFT, RIGHT, PED = Movement.STRAIGHT, Movement.LEFT, Movement.RIGHT, Movement.PEDESTRIAN
OPPOSITE = {N: S, S: N, E: W, W: E}
# Right-hand traffic: where a vehicle coming from an arm ends up (e.g. from N heading south, a
# left turn goes east into the E arm).
LEFT_TO = {N: E, E: S, S: W, W: N}
RIGHT_TO = {N: W, E: N, S: E, W: S}

DISTRICTS = ("芝罘区", "莱山区", "福山区", "牟平区", "开发区")

# An end point is (lat, lon), or (street, coordinate): on that street at this lon (for a street
# running north-south, ending on an east-west one) or at this lat (east-west ending on north-south).
Point = tuple[float, float]
End = tuple[float, float] | tuple[str, float]


@dataclass(frozen=True)
class StreetSpec:
    """A street as written below: names, axis, two ends (west/north first) and a rank."""

    zh: str
    en: str
    axis: str  # "EW" or "NS"
    start: End  # west end (EW) or north end (NS)
    end: End
    rank: int  # 3 main arterial, 2 arterial, 1 collector


def ew(zh: str, en: str, start: End, end: End, rank: int) -> StreetSpec:
    """An east-west street from its west end to its east end."""
    return StreetSpec(zh, en, "EW", start, end, rank)


def ns(zh: str, en: str, start: End, end: End, rank: int) -> StreetSpec:
    """A north-south street from its north end to its south end."""
    return StreetSpec(zh, en, "NS", start, end, rank)


STREETS: dict[str, list[StreetSpec]] = {
    "芝罘区": [
        ew("大马路", "Da Malu", (37.5512, 121.3800), (37.5518, 121.4100), 2),
        ew("北马路", "Bei Malu", (37.5465, 121.3640), (37.5472, 121.4120), 2),
        ew("二马路", "Er Malu", (37.5432, 121.3760), (37.5436, 121.4120), 1),
        ew("三马路", "San Malu", (37.5401, 121.3760), (37.5405, 121.4120), 1),
        ew("南大街", "Nan Dajie", (37.5362, 121.3500), (37.5371, 121.4260), 3),
        ew("毓璜顶北路", "Yuhuangding Beilu", (37.5305, 121.3660), (37.5300, 121.4200), 1),
        ew("建设路", "Jianshe Lu", ("西南河路", 37.5270), ("青年路", 37.5265), 1),
        ew("环山路", "Huanshan Lu", (37.5232, 121.3540), (37.5192, 121.4360), 2),
        ew("红旗中路", "Hongqi Zhonglu", (37.5082, 121.3420), (37.5038, 121.4400), 3),
        ew("南通路", "Nantong Lu", (37.4950, 121.3420), (37.4930, 121.4050), 1),
        ew("港城大街", "Gangcheng Dajie", (37.4790, 121.3350), (37.4745, 121.4050), 3),
        ns("只楚路", "Zhichu Lu", (37.5490, 121.3560), (37.4700, 121.3480), 2),
        ns("西南河路", "Xinanhe Lu", (37.5505, 121.3720), ("环山路", 121.3712), 1),
        ns("通世路", "Tongshi Lu", ("北马路", 121.3775), (37.4960, 121.3790), 2),
        ns("解放路", "Jiefang Lu", ("大马路", 121.3830), ("环山路", 121.3835), 1),
        ns("胜利路", "Shengli Lu", ("大马路", 121.3920), (37.4990, 121.3930), 2),
        ns("青年路", "Qingnian Lu", ("北马路", 121.3990), ("红旗中路", 121.4000), 2),
        ns("大海阳路", "Dahaiyang Lu", ("大马路", 121.4065), (37.5120, 121.4075), 1),
        ns("上夼西路", "Shangkuang Xilu", ("南大街", 121.4150), (37.4990, 121.4160), 1),
        ns("毓璜顶东路", "Yuhuangding Donglu", ("南大街", 121.4110), ("环山路", 121.4112), 1),
        ns("芝罘屯路", "Zhifutun Lu", ("南大街", 121.3600), (37.4990, 121.3605), 1),
        ns("机场路", "Jichang Lu", ("环山路", 121.3650), (37.4600, 121.3700), 3),
        ns("黄务路", "Huangwu Lu", ("红旗中路", 121.3600), ("港城大街", 121.3610), 1),
    ],
    "莱山区": [
        ew("红旗东路", "Hongqi Donglu", (37.5020, 121.4250), (37.4880, 121.4980), 2),
        ew("滨海中路", "Binhai Zhonglu", (37.4800, 121.4300), (37.4735, 121.5150), 2),
        ew("迎春大街", "Yingchun Dajie", (37.4690, 121.4080), (37.4620, 121.5250), 3),
        ew("港城东大街", "Gangcheng Dongdajie", (37.4560, 121.4050), (37.4500, 121.5300), 3),
        ew("府后路", "Fuhou Lu", (37.4605, 121.4150), (37.4570, 121.5000), 1),
        ew("秀林路", "Xiulin Lu", (37.4440, 121.4150), ("科技大道", 37.4405), 1),
        ew("盛泉路", "Shengquan Lu", (37.4385, 121.4150), (37.4355, 121.5050), 1),
        ew("金都路", "Jindu Lu", (37.4330, 121.4150), (37.4300, 121.5050), 1),
        ns("山东路", "Shandong Lu", ("红旗东路", 121.4180), (37.4250, 121.4200), 2),
        ns("山海路", "Shanhai Lu", ("红旗东路", 121.4320), (37.4250, 121.4330), 2),
        ns("观海路", "Guanhai Lu", ("滨海中路", 121.4460), ("金都路", 121.4470), 3),
        ns("清泉路", "Qingquan Lu", ("红旗东路", 121.4580), ("秀林路", 121.4590), 1),
        ns("双河东路", "Shuanghe Donglu", ("红旗东路", 121.4700), (37.4250, 121.4710), 2),
        ns("银海路", "Yinhai Lu", ("滨海中路", 121.4830), ("金都路", 121.4840), 1),
        ns("科技大道", "Keji Dadao", (37.4900, 121.4980), (37.4250, 121.5000), 2),
        ns("宝源路", "Baoyuan Lu", ("迎春大街", 121.5200), (37.4300, 121.5210), 1),
        ns("枫林路", "Fenglin Lu", ("滨海中路", 121.5100), ("港城东大街", 121.5110), 1),
    ],
    "福山区": [
        ew("北苑街", "Beiyuan Jie", (37.5110, 121.2500), (37.5105, 121.2850), 1),
        ew("县府街", "Xianfu Jie", (37.5065, 121.2480), ("聚福路", 37.5060), 1),
        ew("永达街", "Yongda Jie", (37.5012, 121.2420), (37.5000, 121.3000), 2),
        ew("福新街", "Fuxin Jie", (37.4962, 121.2480), (37.4955, 121.2920), 1),
        ew("港城西大街", "Gangcheng Xidajie", (37.4915, 121.2350), (37.4895, 121.3050), 3),
        ew("松山街", "Songshan Jie", (37.4850, 121.2480), (37.4840, 121.2920), 1),
        ns("汇福街", "Huifu Jie", (37.5120, 121.2530), ("松山街", 121.2535), 1),
        ns("福海路", "Fuhai Lu", (37.5150, 121.2610), (37.4780, 121.2620), 2),
        ns("崇文路", "Chongwen Lu", ("北苑街", 121.2670), ("港城西大街", 121.2672), 1),
        ns("河滨路", "Hebin Lu", (37.5150, 121.2720), (37.4780, 121.2730), 2),
        ns("聚福路", "Jufu Lu", (37.5120, 121.2830), ("港城西大街", 121.2835), 1),
        ns("福南路", "Funan Lu", ("永达街", 121.2910), (37.4800, 121.2915), 1),
    ],
    "牟平区": [
        ew("北关大街", "Beiguan Dajie", (37.3970, 121.5800), (37.3975, 121.6200), 2),
        ew("文化街", "Wenhua Jie", (37.3922, 121.5780), ("大窑路", 37.3925), 1),
        ew("宁海大街", "Ninghai Dajie", (37.3880, 121.5700), (37.3885, 121.6300), 3),
        ew("政府大街", "Zhengfu Dajie", ("西关路", 37.3838), (37.3842, 121.6250), 1),
        ew("金埠大街", "Jinbu Dajie", (37.3780, 121.5750), (37.3785, 121.6250), 2),
        ew("新城大街", "Xincheng Dajie", (37.3730, 121.5800), (37.3740, 121.6200), 2),
        ew("南关大街", "Nanguan Dajie", ("通海路", 37.3810), ("东关路", 37.3812), 1),
        ns("沁水路", "Qinshui Lu", ("宁海大街", 121.5770), (37.3700, 121.5772), 1),
        ns("西关路", "Xiguan Lu", (37.4020, 121.5850), (37.3720, 121.5852), 1),
        ns("通海路", "Tonghai Lu", (37.4030, 121.5925), (37.3700, 121.5928), 2),
        ns("正阳路", "Zhengyang Lu", (37.4050, 121.6000), (37.3680, 121.6003), 3),
        ns("东关路", "Dongguan Lu", ("北关大街", 121.6080), (37.3720, 121.6082), 1),
        ns("大窑路", "Dayao Lu", (37.4020, 121.6160), (37.3720, 121.6162), 1),
        ns("牟山路", "Moushan Lu", ("宁海大街", 121.6240), (37.3720, 121.6242), 1),
    ],
    "开发区": [
        ew("珠江路", "Zhujiang Lu", (37.5790, 121.2000), (37.5795, 121.2800), 1),
        ew("香江路", "Xiangjiang Lu", (37.5735, 121.1950), (37.5740, 121.2900), 1),
        ew("黄河路", "Huanghe Lu", (37.5682, 121.1900), (37.5688, 121.3000), 2),
        ew("长江路", "Changjiang Lu", (37.5572, 121.1850), (37.5578, 121.3050), 3),
        ew("岷江路", "Minjiang Lu", ("泰山路", 37.5518), ("华山路", 37.5522), 1),
        ew("金沙江路", "Jinshajiang Lu", (37.5462, 121.1900), (37.5468, 121.3000), 3),
        ew("漓江路", "Lijiang Lu", ("五指山路", 37.5410), ("天山路", 37.5415), 1),
        ew("淮河路", "Huaihe Lu", (37.5360, 121.2000), (37.5365, 121.2900), 1),
        ns("黄山路", "Huangshan Lu", (37.5700, 121.1920), (37.5400, 121.1930), 1),
        ns("峨眉山路", "Emeishan Lu", ("香江路", 121.1990), ("金沙江路", 121.1995), 1),
        ns("五指山路", "Wuzhishan Lu", ("珠江路", 121.2050), ("淮河路", 121.2055), 1),
        ns("泰山路", "Taishan Lu", (37.5850, 121.2180), (37.5300, 121.2185), 2),
        ns("衡山路", "Hengshan Lu", ("珠江路", 121.2320), (37.5300, 121.2325), 2),
        ns("嵩山路", "Songshan Lu", ("黄河路", 121.2450), ("淮河路", 121.2455), 1),
        ns("天山路", "Tianshan Lu", (37.5850, 121.2580), (37.5300, 121.2585), 3),
        ns("华山路", "Huashan Lu", ("珠江路", 121.2720), (37.5300, 121.2725), 2),
        ns("武夷山路", "Wuyishan Lu", ("香江路", 121.2650), ("淮河路", 121.2652), 1),
        ns("长白山路", "Changbaishan Lu", ("黄河路", 121.2960), ("金沙江路", 121.2965), 1),
        ns("太行山路", "Taihangshan Lu", ("黄河路", 121.2860), ("金沙江路", 121.2865), 1),
    ],
}

# Special cases, by intersection name.
FIRST = "南大街与胜利路交叉口"  # YT001, J2735 id 12111 (the real SPaT sample record)
J2735_CORRIDOR = "南大街"  # V2X pilot corridor: every crossing on it broadcasts J2735
J2735_FIRST_ID = 12111
CHANNELISED = "长江路与天山路交叉口"  # explicit conflicts: channelised right turns
CONTROLLER_TABLE = "港城东大街与枫林路交叉口"  # explicit conflicts: as read off the controller


@dataclass(frozen=True)
class Street:
    """A resolved street: a straight segment from its west/north end to its east/south end."""

    spec: StreetSpec
    p1: Point
    p2: Point


@dataclass
class Crossing:
    """A candidate intersection of two streets, with the arm a T-junction lacks."""

    district: str
    main: Street
    side: Street
    lat: float
    lon: float
    missing: Approach | None
    order: tuple[int, float]

    @property
    def name_zh(self) -> str:
        """The Chinese name: main street first."""
        return f"{self.main.spec.zh}与{self.side.spec.zh}交叉口"

    @property
    def name_en(self) -> str:
        """The English (pinyin) name: main street first."""
        return f"{self.main.spec.en} & {self.side.spec.en}"


def resolve(specs: list[StreetSpec]) -> dict[str, Street]:
    """Turn end points given as 'on street X' into coordinates."""
    streets: dict[str, Street] = {}
    pending = list(specs)
    while pending:
        progress = False
        for spec in list(pending):
            ends = [end_point(spec, end, streets) for end in (spec.start, spec.end)]
            if ends[0] is None or ends[1] is None:
                continue
            streets[spec.zh] = Street(spec, ends[0], ends[1])
            pending.remove(spec)
            progress = True
        if not progress:
            raise SystemExit(f"cannot resolve streets {[s.zh for s in pending]}")
    return streets


def end_point(spec: StreetSpec, end: End, streets: dict[str, Street]) -> Point | None:
    """The (lat, lon) of one end of a street, or None if it ends on a street not yet resolved."""
    first, coordinate = end
    if not isinstance(first, str):
        return (first, coordinate)
    other = streets.get(first)
    if other is None:
        return None
    (lat1, lon1), (lat2, lon2) = other.p1, other.p2
    if spec.axis == "NS":  # ends at this lon on an east-west street
        lon = coordinate
        return (lat1 + (lat2 - lat1) * (lon - lon1) / (lon2 - lon1), lon)
    lat = coordinate  # an east-west street ends at this lat on a north-south street
    return (lat, lon1 + (lon2 - lon1) * (lat - lat1) / (lat2 - lat1))


def crossing(district: str, a: Street, b: Street, order: tuple[int, float]) -> Crossing | None:
    """Where east-west street ``a`` meets north-south street ``b``, if the segments meet."""
    (ay1, ax1), (ay2, ax2) = a.p1, a.p2
    (by1, bx1), (by2, bx2) = b.p1, b.p2
    dax, day, dbx, dby = ax2 - ax1, ay2 - ay1, bx2 - bx1, by2 - by1
    denominator = dax * dby - day * dbx
    t = ((bx1 - ax1) * dby - (by1 - ay1) * dbx) / denominator
    u = ((bx1 - ax1) * day - (by1 - ay1) * dax) / denominator
    tol = 1e-6
    if not (-tol <= t <= 1 + tol and -tol <= u <= 1 + tol):
        return None
    a_end = abs(t) < tol or abs(t - 1) < tol
    b_end = abs(u) < tol or abs(u - 1) < tol
    if a_end and b_end:
        return None  # a corner, not a junction
    missing: Approach | None = None
    if a_end:
        missing = W if abs(t) < tol else E
    elif b_end:
        missing = N if abs(u) < tol else S
    main, side = a, b  # a T-junction is named after its through street first
    if missing in (E, W) or (missing is None and b.spec.rank > a.spec.rank):
        main, side = b, a
    return Crossing(district, main, side, ay1 + t * day, ax1 + t * dax, missing, order)


def candidates() -> list[Crossing]:
    """Every crossing of an east-west with a north-south street, district by district."""
    found: list[Crossing] = []
    for d_index, district in enumerate(DISTRICTS):
        streets = resolve(STREETS[district])
        ews = [s for s in streets.values() if s.spec.axis == "EW"]
        nss = [s for s in streets.values() if s.spec.axis == "NS"]
        for e_index, a in enumerate(ews):
            for b in nss:
                c = crossing(district, a, b, (d_index * 100 + e_index, 0.0))
                if c is not None:
                    c.order = (c.order[0], c.lon)
                    found.append(c)
    return found


def axes(c: Crossing) -> tuple[tuple[Approach, Approach], tuple[Approach, Approach]]:
    """The main street's approaches (a, b) and the side street's (c, d), for NEMA numbering."""
    if c.main.spec.axis == "EW":
        return (E, W), (N, S)
    return (N, S), (E, W)


def build_groups(c: Crossing, rng: random.Random, all_rights: bool = False) -> list[SignalGroup]:
    """Signal groups for a crossing: NEMA 1..8 for through and left, then rights and peds."""
    (a, b), (cc, d) = axes(c)
    nema = {
        (a, STRAIGHT): 2,
        (b, LEFT): 1,
        (b, STRAIGHT): 6,
        (a, LEFT): 5,
        (cc, STRAIGHT): 4,
        (d, LEFT): 3,
        (d, STRAIGHT): 8,
        (cc, LEFT): 7,
    }
    arms = [arm for arm in (N, E, S, W) if arm is not c.missing]

    def exists(arm: Approach, movement: Movement) -> bool:
        target = {STRAIGHT: OPPOSITE, LEFT: LEFT_TO, RIGHT: RIGHT_TO}[movement][arm]
        return arm in arms and target in arms

    groups = [
        SignalGroup(sg, arm, movement)
        for (arm, movement), sg in sorted(nema.items(), key=lambda kv: kv[1])
        if exists(arm, movement)
    ]
    rights = [arm for arm in (a, b, cc, d) if exists(arm, RIGHT)]
    peds = list(arms)
    chosen_rights: list[Approach]
    chosen_peds: list[Approach]
    if c.missing is None:
        if all_rights:
            chosen_rights, chosen_peds = rights, []
        else:
            k = rng.choices((0, 1, 2, 3, 4), weights=(2, 2, 3, 3, 4))[0]
            options = [(RIGHT, arm) for arm in rights] + [(PED, arm) for arm in peds]
            picked = set(rng.sample(options, k))
            chosen_rights = [arm for arm in rights if (RIGHT, arm) in picked]
            chosen_peds = [arm for arm in peds if (PED, arm) in picked]
    else:
        stem = OPPOSITE[c.missing]
        k = rng.choices((0, 1, 2), weights=(3, 4, 3))[0]
        options = [(RIGHT, arm) for arm in rights if arm is not stem]
        options += [(PED, arm) for arm in peds]
        picked = set(rng.sample(options, k))
        chosen_rights = [arm for arm in rights if arm is stem or (RIGHT, arm) in picked]
        chosen_peds = [arm for arm in peds if (PED, arm) in picked]
    sg = 9
    for arm in chosen_rights:
        groups.append(SignalGroup(sg, arm, RIGHT))
        sg += 1
    for arm in chosen_peds:
        groups.append(SignalGroup(sg, arm, PED))
        sg += 1
    return groups


def channelised_conflicts(groups: list[SignalGroup]) -> set[frozenset[int]]:
    """The derived pairs minus right turn vs the crossing straight it does not merge with."""
    pairs = set(derive_conflicts(groups))
    for right in (g for g in groups if g.movement is RIGHT):
        # A right turn from arm X leaves by RIGHT_TO[X]; straight traffic from the arm opposite
        # that exit drives away from it and never meets the turning vehicle.
        source = OPPOSITE[RIGHT_TO[right.approach]]
        for other in groups:
            if other.movement is STRAIGHT and other.approach is source:
                pairs.discard(frozenset((right.sg, other.sg)))
    return pairs


def select(found: list[Crossing], rng: random.Random) -> list[Crossing]:
    """TOTAL crossings, about a quarter T-junctions; the rest are left unsignalised."""
    tees = [c for c in found if c.missing is not None]
    fours = [c for c in found if c.missing is None]
    n_tees = min(len(tees), T_TARGET)
    n_fours = TOTAL - n_tees
    if len(fours) < n_fours:
        raise SystemExit(f"only {len(fours)} four-arm candidates, need {n_fours}")
    keep = {id(c) for c in rng.sample(tees, n_tees) + rng.sample(fours, n_fours)}
    for name in (FIRST, CHANNELISED, CONTROLLER_TABLE):
        if not any(c.name_zh == name and id(c) in keep for c in found):
            raise SystemExit(f"{name} was not selected; change SEED")
    chosen = [c for c in found if id(c) in keep]
    chosen.sort(key=lambda c: (c.name_zh != FIRST, c.order))
    return chosen


HEADER = """\
# Signalised intersections of Yantai (烟台) for signal_gateway.
#
# SAMPLE DATA. Positions, names and signal groups were generated by scripts/gen_intersections.py
# along Yantai's real arterials (streets are straight lines between plausible coordinates, crossings
# spaced along them) and must be replaced by the city's survey before anyone relies on them.
# Districts: 芝罘区 Zhifu, 莱山区 Laishan, 福山区 Fushan, 牟平区 Muping, 开发区 Development Zone.
#
# Format: city, bbox [west, south, east, north] (coordinates are checked against it), and
# intersections: id (YT + 3 digits), name_zh, name_en, district, lat, lon (WGS84, 6 decimals),
# optional j2735_id (0..65535, the J2735 IntersectionID a roadside unit broadcasts), groups
# [{sg, approach N/E/S/W, movement straight/left/right/pedestrian}], optional conflicts.
# Vehicle through/left groups use NEMA numbers: main street through 2 and 6 (lefts 1 and 5),
# side street through 4 and 8 (lefts 7 and 3); right turns and pedestrians count on from 9.
#
# Conflict rule (signal_gateway.core.registry.derive_conflicts), pairs of groups never green
# together, used unless an intersection lists `conflicts:` (which then REPLACES the rule):
#   - axis of a vehicle group: NS for approaches N/S, EW for E/W;
#   - a pedestrian group on arm X crosses that arm and runs with the other axis
#     (crossing the N or S arm runs with EW, the E or W arm with NS);
#   - two pedestrian groups never conflict;
#   - two vehicle groups conflict if their axes differ; on the same axis iff exactly one is a
#     left turn and they come from opposite approaches (N-left vs S-straight/S-right);
#   - a pedestrian group conflicts with a vehicle group whose axis differs from the axis the
#     pedestrians run with, and with every left turn;
#   - right turns are permissive: they yield to the pedestrians crossing the arm they turn into.
"""


def main() -> None:
    """Write intersections.yaml and check it loads."""
    rng = random.Random(SEED)
    chosen = select(candidates(), rng)
    lines = [HEADER, "city: Yantai", f"bbox: [{', '.join(f'{v:.2f}' for v in BBOX)}]", ""]
    lines.append("intersections:")
    j2735_next = J2735_FIRST_ID + 1
    for number, c in enumerate(chosen, start=1):
        ident = f"YT{number:03d}"
        groups = build_groups(c, rng, all_rights=c.name_zh == CHANNELISED)
        lines.append(f"  - id: {ident}")
        lines.append(f"    name_zh: {c.name_zh}")
        lines.append(f'    name_en: "{c.name_en}"')
        lines.append(f"    district: {c.district}")
        lines.append(f"    lat: {c.lat:.6f}")
        lines.append(f"    lon: {c.lon:.6f}")
        if c.name_zh == FIRST:
            lines.append(f"    j2735_id: {J2735_FIRST_ID}  # the real J2735 sample record")
        elif J2735_CORRIDOR in (c.main.spec.zh, c.side.spec.zh):
            lines.append(f"    j2735_id: {j2735_next}  # {J2735_CORRIDOR} V2X pilot corridor")
            j2735_next += 1
        lines.append("    groups:")
        for g in groups:
            lines.append(
                f"      - {{sg: {g.sg}, approach: {g.approach.value},"
                f" movement: {g.movement.value}}}"
            )
        explicit: set[frozenset[int]] | None = None
        if c.name_zh == CHANNELISED:
            lines.append(
                "    # Channelised right turns (渠化右转): a right turn does not conflict with the"
            )
            lines.append("    # straight traffic leaving away from its exit. Replaces the rule.")
            explicit = channelised_conflicts(groups)
        elif c.name_zh == CONTROLLER_TABLE:
            lines.append("    # Conflict table as read off the controller. Replaces the rule.")
            explicit = set(derive_conflicts(groups))
        if explicit is not None:
            pairs = sorted(tuple(sorted(p)) for p in explicit)
            lines.append(f"    conflicts: [{', '.join(f'[{x}, {y}]' for x, y in pairs)}]")
    OUTPUT.write_text("\n".join(lines) + "\n", encoding="utf-8")
    registry = load_registry(OUTPUT)
    tees = sum(1 for ix in registry if len({g.approach for g in ix.groups}) == 3)
    print(f"wrote {OUTPUT}: {len(registry)} intersections, {tees} T-junctions")


if __name__ == "__main__":
    main()
