// A sketch of the streets, drawn when map tiles cannot load (no internet, tile server down) so the
// markers do not float on an empty background. Pure: the registry in, polylines out.
//
// Every name_zh reads "<street>与<street>交叉口"; intersections sharing a street are joined in
// order along the direction in which they spread most.

const NAME = /^(.+?)与(.+?)(?:交叉口|路口)?$/;

/** The two street names of an intersection, or [] when the name does not say. */
export function streetsOf(nameZh) {
  const match = NAME.exec(String(nameZh ?? "").trim());
  return match ? [match[1], match[2]] : [];
}

/** [{name, points: [[lat, lon], ...]}] for every street with at least two intersections. */
export function streetLines(intersections) {
  const byStreet = new Map();
  for (const item of intersections) {
    for (const street of streetsOf(item.name_zh)) {
      if (!byStreet.has(street)) byStreet.set(street, []);
      byStreet.get(street).push(item);
    }
  }
  const lines = [];
  for (const [name, items] of byStreet) {
    if (items.length < 2) continue;
    const lats = items.map((i) => i.lat);
    const lons = items.map((i) => i.lon);
    const spreadLat = Math.max(...lats) - Math.min(...lats);
    const spreadLon = (Math.max(...lons) - Math.min(...lons)) * Math.cos((lats[0] * Math.PI) / 180);
    const key = spreadLon >= spreadLat ? (i) => i.lon : (i) => i.lat;
    const points = [...items].sort((a, b) => key(a) - key(b)).map((i) => [i.lat, i.lon]);
    lines.push({ name, points });
  }
  return lines;
}
