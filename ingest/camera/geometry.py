"""Plane geometry on normalized image coordinates (0..1, y down): polygons, segments, sides."""

from __future__ import annotations

from collections.abc import Sequence

Point = tuple[float, float]


def cross(o: Point, a: Point, b: Point) -> float:
    """z of (a - o) x (b - o). Positive when b lies on the right-hand side of o→a as shown on screen (y down)."""
    return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])


def _on_segment(p: Point, q: Point, r: Point) -> bool:
    return min(p[0], r[0]) <= q[0] <= max(p[0], r[0]) and min(p[1], r[1]) <= q[1] <= max(p[1], r[1])


def segments_intersect(p1: Point, p2: Point, q1: Point, q2: Point) -> bool:
    """True when the closed segments p1p2 and q1q2 share a point."""
    d1 = cross(q1, q2, p1)
    d2 = cross(q1, q2, p2)
    d3 = cross(p1, p2, q1)
    d4 = cross(p1, p2, q2)
    if ((d1 > 0 > d2) or (d1 < 0 < d2)) and ((d3 > 0 > d4) or (d3 < 0 < d4)):
        return True
    return (
        (d1 == 0 and _on_segment(q1, p1, q2))
        or (d2 == 0 and _on_segment(q1, p2, q2))
        or (d3 == 0 and _on_segment(p1, q1, p2))
        or (d4 == 0 and _on_segment(p1, q2, p2))
    )


def self_intersection(polygon: Sequence[Point]) -> tuple[int, int] | None:
    """Indices of two non-adjacent edges that touch, or None when the polygon is simple."""
    n = len(polygon)
    edges = [(polygon[i], polygon[(i + 1) % n]) for i in range(n)]
    for i in range(n):
        for j in range(i + 1, n):
            if j == i + 1 or (i == 0 and j == n - 1):
                continue
            if segments_intersect(*edges[i], *edges[j]):
                return i, j
    return None


def area(polygon: Sequence[Point]) -> float:
    """Unsigned area (shoelace)."""
    n = len(polygon)
    s = 0.0
    for i in range(n):
        x1, y1 = polygon[i]
        x2, y2 = polygon[(i + 1) % n]
        s += x1 * y2 - x2 * y1
    return abs(s) / 2


EDGE = 1e-6  # how near an edge a point counts as on it (normalized units; far below one pixel)


def on_boundary(polygon: Sequence[Point], p: Point, tolerance: float = EDGE) -> bool:
    """True when ``p`` lies on an edge or vertex of ``polygon`` (within ``tolerance``)."""
    n = len(polygon)
    for i in range(n):
        a, b = polygon[i], polygon[(i + 1) % n]
        dx, dy = b[0] - a[0], b[1] - a[1]
        length2 = dx * dx + dy * dy
        u = 0.0 if length2 == 0 else max(0.0, min(1.0, ((p[0] - a[0]) * dx + (p[1] - a[1]) * dy) / length2))
        cx, cy = a[0] + u * dx, a[1] + u * dy
        if (p[0] - cx) ** 2 + (p[1] - cy) ** 2 <= tolerance * tolerance:
            return True
    return False


def contains(polygon: Sequence[Point], p: Point) -> bool:
    """Point-in-polygon (even-odd rule), edges and vertices included: a zone drawn to the frame border holds a foot
    point on that border (a box touching the bottom of the picture has its foot at y = 1.0)."""
    x, y = p
    inside = False
    n = len(polygon)
    j = n - 1
    for i in range(n):
        xi, yi = polygon[i]
        xj, yj = polygon[j]
        if (yi > y) != (yj > y) and x < (xj - xi) * (y - yi) / (yj - yi) + xi:
            inside = not inside
        j = i
    # The edge test only for points the even-odd rule leaves out (it costs as much again; most tests are inside).
    return inside or on_boundary(polygon, p)
