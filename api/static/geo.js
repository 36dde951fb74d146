// @ts-check
// WGS-84 <-> GCJ-02 (the "offset" datum Chinese web maps such as AutoNavi/Gaode draw their tiles in). SharpEye keeps
// every position in WGS-84 (GPS, GB/T 28181 catalogues, 天地图's CGCS2000 within centimetres); a map whose tiles
// are GCJ-02 shows a WGS-84 point 300-700 m off unless it is shifted for display. The shift is the published
// polynomial on the Krasovsky ellipsoid, applied only inside China (outside it the two datums are the same).

const A = 6378245.0; // Krasovsky 1940 semi-major axis, metres
const EE = 0.006693421622965943; // its first eccentricity squared
const PI = Math.PI;

/** Whether a point lies outside the box GCJ-02 offsets (outside it GCJ-02 equals WGS-84).
 * @param {number} lat @param {number} lon */
export function outsideChina(lat, lon) {
  return lon < 72.004 || lon > 137.8347 || lat < 0.8293 || lat > 55.8271;
}

/** The offset in degrees (lat, lon) GCJ-02 adds at a point.
 * @param {number} lat @param {number} lon @returns {[number, number]} */
function offset(lat, lon) {
  const x = lon - 105;
  const y = lat - 35;
  const root = Math.sqrt(Math.abs(x));
  const wave = (20 * Math.sin(6 * x * PI) + 20 * Math.sin(2 * x * PI)) * 2 / 3;
  const north = -100 + 2 * x + 3 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * root + wave
    + (20 * Math.sin(y * PI) + 40 * Math.sin(y / 3 * PI)) * 2 / 3
    + (160 * Math.sin(y / 12 * PI) + 320 * Math.sin(y / 30 * PI)) * 2 / 3;
  const east = 300 + x + 2 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * root + wave
    + (20 * Math.sin(x * PI) + 40 * Math.sin(x / 3 * PI)) * 2 / 3
    + (150 * Math.sin(x / 12 * PI) + 300 * Math.sin(x / 30 * PI)) * 2 / 3;
  const phi = lat / 180 * PI;
  const w = 1 - EE * Math.sin(phi) ** 2;
  const meridian = A * (1 - EE) / (w * Math.sqrt(w)); // radius of curvature in the meridian
  const parallel = A / Math.sqrt(w) * Math.cos(phi); // radius of the parallel
  return [north * 180 / (meridian * PI), east * 180 / (parallel * PI)];
}

/** WGS-84 to GCJ-02, for drawing on GCJ-02 tiles.
 * @param {number} lat @param {number} lon @returns {[number, number]} */
export function wgsToGcj(lat, lon) {
  if (outsideChina(lat, lon)) return [lat, lon];
  const [dLat, dLon] = offset(lat, lon);
  return [lat + dLat, lon + dLon];
}

/** GCJ-02 back to WGS-84 (a point picked on GCJ-02 tiles), by fixed-point iteration to about 1 cm.
 * @param {number} lat @param {number} lon @returns {[number, number]} */
export function gcjToWgs(lat, lon) {
  if (outsideChina(lat, lon)) return [lat, lon];
  let wLat = lat;
  let wLon = lon;
  for (let i = 0; i < 30; i++) {
    const [gLat, gLon] = wgsToGcj(wLat, wLon);
    const eLat = gLat - lat;
    const eLon = gLon - lon;
    wLat -= eLat;
    wLon -= eLon;
    if (Math.abs(eLat) < 1e-9 && Math.abs(eLon) < 1e-9) break;
  }
  return [wLat, wLon];
}
