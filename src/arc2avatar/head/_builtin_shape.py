"""Shape of the built-in head: a sculpt of smooth implicit primitives, meshed by ray casting.

Written by hand because no library ships a licence-free, closed human head mesh. The head is
the zero level set of a signed-distance-like field ``f`` (negative inside) composed from
ellipsoids, a round cone and an elliptic cylinder with polynomial smooth minimum/maximum
(smooth union / subtraction). Every position and radius is a field of :class:`HeadSculpt`.

Meshing: a sphere triangulation (Fibonacci points, convex hull by scipy's Qhull, conformally
concentrated toward the face) is mapped onto the surface by casting one ray per vertex from an
origin on a vertical axis inside the head and keeping the outermost crossing of ``f = 0``. Ray
origins slide down the axis for downward rays (so the neck is hit side-on); rays in one
half-plane through the axis never cross, so the mesh inherits the sphere's closed, manifold,
outward-oriented connectivity.

Sculpt frame: world axes (z up, face toward +y, subject's left = −x), eye line at z = 0,
roughly 2 units from the bottom of the neck to the crown; ``builtin.py`` rescales it exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray
from scipy.spatial import ConvexHull

Vec3 = tuple[float, float, float]
FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class Ellipsoid:
    """An ellipsoid, sculpt units. ``mirror``: also placed at −x (evaluated at ``|x|``).

    ``tilt_deg`` rotates it about the x axis, ``flare_deg`` then about the z axis (degrees,
    right-handed; evaluated at ``|x|`` when mirrored, so the mirror image turns the other way).
    """

    centre: Vec3
    radii: Vec3
    mirror: bool = False
    tilt_deg: float = 0.0
    flare_deg: float = 0.0


@dataclass(frozen=True)
class RoundCone:
    """A cone with spherical ends from ``a`` (radius ``radius_a``) to ``b`` (``radius_b``)."""

    a: Vec3
    b: Vec3
    radius_a: float
    radius_b: float


@dataclass(frozen=True)
class Neck:
    """A vertical elliptic cylinder (x/y radii) around ``(0, centre_y)`` from ``bottom_z`` to
    ``top_z``, flat-bottomed with a rounded rim of radius ``rim``."""

    centre_y: float
    radii_xy: tuple[float, float]
    bottom_z: float
    top_z: float
    rim: float


@dataclass(frozen=True)
class HeadSculpt:
    """Every primitive and blend radius of the built-in head (sculpt units, see module doc).

    Proportions follow the usual artists' canon: eyes half-way between crown and chin, face in
    thirds (hairline, brow, nose base, chin), mouth a third of the way from nose base to chin,
    ears from brow to nose base, inter-pupil distance ≈ 0.45 units (≈ 14 cm per unit).
    Blend radii (``k_*``) are the widths of the smooth unions/subtractions, sculpt units.
    """

    cranium: Ellipsoid = Ellipsoid((0.0, -0.10, 0.14), (0.55, 0.72, 0.70))
    midface: Ellipsoid = Ellipsoid((0.0, 0.10, -0.18), (0.48, 0.50, 0.40))
    cheekbones: Ellipsoid = Ellipsoid((0.30, 0.34, -0.10), (0.16, 0.18, 0.10), mirror=True)
    jaw: Ellipsoid = Ellipsoid((0.0, 0.04, -0.52), (0.40, 0.50, 0.30))
    jaw_angles: Ellipsoid = Ellipsoid((0.34, -0.08, -0.50), (0.12, 0.18, 0.20), mirror=True)
    chin: Ellipsoid = Ellipsoid((0.0, 0.41, -0.70), (0.17, 0.12, 0.11))
    muzzle: Ellipsoid = Ellipsoid((0.0, 0.40, -0.45), (0.26, 0.24, 0.20))
    neck: Neck = Neck(centre_y=-0.10, radii_xy=(0.34, 0.36), bottom_z=-1.18, top_z=-0.30, rim=0.08)
    nose_bridge: RoundCone = RoundCone((0.0, 0.60, 0.04), (0.0, 0.77, -0.21), 0.05, 0.065)
    nose_tip: Ellipsoid = Ellipsoid((0.0, 0.775, -0.24), (0.07, 0.065, 0.06))
    nose_wings: Ellipsoid = Ellipsoid((0.08, 0.69, -0.265), (0.065, 0.06, 0.05), mirror=True)
    brow_ridge: Ellipsoid = Ellipsoid((0.20, 0.55, 0.14), (0.20, 0.08, 0.06), mirror=True)
    eye_sockets: Ellipsoid = Ellipsoid((0.22, 0.70, 0.0), (0.16, 0.14, 0.11), mirror=True)
    eyeballs: Ellipsoid = Ellipsoid((0.22, 0.50, -0.005), (0.12, 0.12, 0.12), mirror=True)
    upper_lip: Ellipsoid = Ellipsoid((0.0, 0.62, -0.43), (0.19, 0.07, 0.045))
    lower_lip: Ellipsoid = Ellipsoid((0.0, 0.60, -0.52), (0.17, 0.07, 0.05))
    mouth_slit: Ellipsoid = Ellipsoid((0.0, 0.68, -0.475), (0.17, 0.06, 0.012))
    ears: Ellipsoid = Ellipsoid((0.55, -0.12, -0.06), (0.07, 0.17, 0.24), mirror=True, tilt_deg=15.0, flare_deg=20.0)
    conchae: Ellipsoid = Ellipsoid((0.635, -0.10, -0.09), (0.05, 0.07, 0.10), mirror=True, tilt_deg=15.0)
    k_face: float = 0.10
    k_neck: float = 0.12
    k_feature: float = 0.04
    k_socket: float = 0.08
    k_nose: float = 0.07
    k_eyeball: float = 0.02
    k_lips: float = 0.02
    k_slit: float = 0.01
    k_ear: float = 0.06


@dataclass(frozen=True)
class RayCast:
    """How the sphere triangulation is cast onto the sculpt (sculpt units).

    ``origin``: ray origin for horizontal and upward rays, on the vertical axis.
    ``drop``: how far the origin slides down for a straight-down ray; it starts sliding at
    ``drop_start_z`` (the z component of the unit ray direction) and reaches ``drop`` at −1.
    ``face_direction``: where the sphere points are concentrated, by a factor
    ``face_zoom``² in density (a conformal stereographic rescaling).
    ``t_max``: ray length searched; ``step``: march step; ``bisections``: refinement steps.
    """

    origin: Vec3 = (0.0, -0.06, -0.08)
    drop: float = 0.62
    drop_start_z: float = -0.70
    face_direction: Vec3 = (0.0, 1.0, -0.15)
    face_zoom: float = 1.45
    t_max: float = 1.4
    step: float = 0.025
    bisections: int = 26


@dataclass(frozen=True)
class Relaxation:
    """Tangential smoothing after the cast: each of ``iterations`` moves every vertex by
    ``rate`` × the tangential part of (neighbour mean − vertex), then ``projections`` Newton
    steps put it back on ``f = 0``. Evens out triangles stretched by grazing rays (nose sides,
    ears, neck)."""

    iterations: int = 12
    rate: float = 0.5
    projections: int = 2


@dataclass(frozen=True)
class ShapeConfig:
    """Sculpt plus meshing; ``num_vertices`` is exact (one per sphere point)."""

    num_vertices: int = 5000
    sculpt: HeadSculpt = field(default_factory=HeadSculpt)
    raycast: RayCast = field(default_factory=RayCast)
    relaxation: Relaxation = field(default_factory=Relaxation)


# ---------------------------------------------------------------------------------------------
# Implicit primitives. All take points (N, 3) and return (N,) values, negative inside.


def _smooth_min(a: FloatArray, b: FloatArray, k: float) -> FloatArray:
    """Polynomial smooth minimum (smooth union) with blend width ``k``."""
    h = np.clip(0.5 + 0.5 * (b - a) / k, 0.0, 1.0)
    return b + (a - b) * h - k * h * (1.0 - h)


def _smooth_subtract(a: FloatArray, b: FloatArray, k: float) -> FloatArray:
    """``a`` with ``b`` carved out, smoothly: smooth max of ``a`` and ``−b``."""
    return -_smooth_min(-a, b, k)


def _rotation(tilt_deg: float, flare_deg: float) -> FloatArray:
    """(3, 3) rotation, world→local for an ellipsoid tilted about x, then flared about z."""
    t, f = np.deg2rad(tilt_deg), np.deg2rad(flare_deg)
    rot_x = np.array([[1.0, 0.0, 0.0], [0.0, np.cos(t), -np.sin(t)], [0.0, np.sin(t), np.cos(t)]])
    rot_z = np.array([[np.cos(f), -np.sin(f), 0.0], [np.sin(f), np.cos(f), 0.0], [0.0, 0.0, 1.0]])
    return (rot_z @ rot_x).T


def ellipsoid_field(points: FloatArray, e: Ellipsoid) -> FloatArray:
    """Approximate signed distance to an ellipsoid, ``k0 (k0 − 1) / k1`` with
    ``k0 = |q / r|``, ``k1 = |q / r²|`` (exact on the surface, a good bound near it)."""
    p = points.copy()
    if e.mirror:
        p[:, 0] = np.abs(p[:, 0])
    q = (p - np.asarray(e.centre)) @ _rotation(e.tilt_deg, e.flare_deg).T
    r = np.asarray(e.radii)
    k0 = np.sqrt(np.einsum("nc,nc->n", q / r, q / r))
    k1 = np.maximum(np.sqrt(np.einsum("nc,nc->n", q / (r * r), q / (r * r))), 1e-12)
    return k0 * (k0 - 1.0) / k1


def round_cone_field(points: FloatArray, c: RoundCone) -> FloatArray:
    """Distance to the segment a→b minus the interpolated radius (a smooth tapered capsule)."""
    a, b = np.asarray(c.a), np.asarray(c.b)
    ab = b - a
    h = np.clip((points - a) @ ab / (ab @ ab), 0.0, 1.0)
    closest = a + h[:, None] * ab
    return np.linalg.norm(points - closest, axis=1) - (c.radius_a + h * (c.radius_b - c.radius_a))


def neck_field(points: FloatArray, n: Neck) -> FloatArray:
    """Capped vertical elliptic cylinder with a rounded bottom rim."""
    q = np.stack([points[:, 0], points[:, 1] - n.centre_y], axis=1)
    r = np.asarray(n.radii_xy)
    k0 = np.linalg.norm(q / r, axis=1)
    k1 = np.maximum(np.linalg.norm(q / (r * r), axis=1), 1e-12)
    side = k0 * (k0 - 1.0) / k1
    below = n.bottom_z - points[:, 2]
    above = points[:, 2] - n.top_z
    return -_smooth_min(-side, -np.maximum(below, above), n.rim)


def head_field(points: FloatArray, s: HeadSculpt) -> FloatArray:
    """(N,) implicit head field at ``points`` (N, 3), sculpt frame; negative inside."""
    head = _smooth_min(ellipsoid_field(points, s.cranium), ellipsoid_field(points, s.midface), s.k_face)
    head = _smooth_min(head, ellipsoid_field(points, s.jaw), s.k_face)
    head = _smooth_min(head, ellipsoid_field(points, s.jaw_angles), s.k_face)
    head = _smooth_min(head, ellipsoid_field(points, s.muzzle), s.k_face)
    head = _smooth_min(head, ellipsoid_field(points, s.chin), s.k_face)
    head = _smooth_min(head, ellipsoid_field(points, s.cheekbones), s.k_face)
    head = _smooth_min(head, neck_field(points, s.neck), s.k_neck)
    head = _smooth_min(head, ellipsoid_field(points, s.brow_ridge), s.k_face)
    head = _smooth_subtract(head, ellipsoid_field(points, s.eye_sockets), s.k_socket)
    head = _smooth_min(head, ellipsoid_field(points, s.eyeballs), s.k_eyeball)
    nose = _smooth_min(round_cone_field(points, s.nose_bridge), ellipsoid_field(points, s.nose_tip), s.k_feature)
    nose = _smooth_min(nose, ellipsoid_field(points, s.nose_wings), s.k_feature)
    head = _smooth_min(head, nose, s.k_nose)
    lips = _smooth_min(ellipsoid_field(points, s.upper_lip), ellipsoid_field(points, s.lower_lip), s.k_lips)
    head = _smooth_min(head, lips, s.k_lips)
    head = _smooth_subtract(head, ellipsoid_field(points, s.mouth_slit), s.k_slit)
    ears = _smooth_subtract(ellipsoid_field(points, s.ears), ellipsoid_field(points, s.conchae), s.k_slit)
    return _smooth_min(head, ears, s.k_ear)


# ---------------------------------------------------------------------------------------------
# Meshing.


def sphere_triangulation(num_points: int, centre_dir: Vec3, zoom: float) -> tuple[FloatArray, NDArray[np.int64]]:
    """Unit-sphere points (N, 3) and outward triangles (F, 3), denser toward ``centre_dir``.

    Fibonacci lattice, stereographically rescaled by ``1/zoom`` about ``centre_dir`` (density
    there × zoom²), triangulated by its convex hull.
    """
    i = np.arange(num_points, dtype=np.float64)
    z = 1.0 - (2.0 * i + 1.0) / num_points
    ring = np.sqrt(1.0 - z * z)
    phi = i * np.pi * (3.0 - np.sqrt(5.0))
    u = np.stack([ring * np.cos(phi), ring * np.sin(phi), z], axis=1)
    c = np.asarray(centre_dir, dtype=np.float64)
    c = c / np.linalg.norm(c)
    along = u @ c
    xi = (u - along[:, None] * c) / (1.0 + along)[:, None] / zoom  # stereographic from −c
    xi2 = np.sum(xi * xi, axis=1, keepdims=True)
    u = (2.0 * xi + (1.0 - xi2) * c) / (1.0 + xi2)
    u = u / np.linalg.norm(u, axis=1, keepdims=True)
    faces = ConvexHull(u).simplices.astype(np.int64)
    tri = u[faces]
    normal = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    inward = np.einsum("fc,fc->f", normal, tri.mean(axis=1)) < 0
    faces[inward] = faces[inward][:, ::-1]
    return u, faces


def ray_origins(directions: FloatArray, rc: RayCast) -> FloatArray:
    """(N, 3) ray origins on the vertical axis; lower for downward ``directions`` (N, 3).

    The drop grows monotonically as rays point further down, so rays sharing a half-plane
    through the axis never cross (the cast is one-to-one).
    """
    span = -1.0 - rc.drop_start_z
    x = np.clip((directions[:, 2] - rc.drop_start_z) / span, 0.0, 1.0)
    drop = rc.drop * x * x * (3.0 - 2.0 * x)
    origins = np.tile(np.asarray(rc.origin, dtype=np.float64), (directions.shape[0], 1))
    origins[:, 2] -= drop
    return origins


def cast_to_surface(directions: FloatArray, s: HeadSculpt, rc: RayCast) -> FloatArray:
    """(N, 3) outermost crossing of the head surface along each ray (sculpt frame)."""
    origins = ray_origins(directions, rc)
    steps = np.arange(rc.t_max, 0.0, -rc.step)
    hit_hi = np.full(directions.shape[0], np.nan)
    for t in steps:  # march inward from outside; the first inside sample brackets the surface
        todo = np.isnan(hit_hi)
        if not todo.any():
            break
        inside = head_field(origins[todo] + t * directions[todo], s) < 0
        idx = np.flatnonzero(todo)[inside]
        hit_hi[idx] = t + rc.step
    if np.isnan(hit_hi).any():
        raise RuntimeError("built-in head sculpt: a ray found no surface; the ray origin is outside the head")
    lo, hi = hit_hi - rc.step, hit_hi  # f(lo) < 0 <= f(hi)
    for _ in range(rc.bisections):
        mid = 0.5 * (lo + hi)
        inside = head_field(origins + mid[:, None] * directions, s) < 0
        lo = np.where(inside, mid, lo)
        hi = np.where(inside, hi, mid)
    return origins + (0.5 * (lo + hi))[:, None] * directions


def field_and_gradient(points: FloatArray, s: HeadSculpt, eps: float = 1e-5) -> tuple[FloatArray, FloatArray]:
    """(N,) field and (N, 3) forward-difference gradient (4 evaluations)."""
    value = head_field(points, s)
    grad = np.empty_like(points)
    for axis in range(3):
        shifted = points.copy()
        shifted[:, axis] += eps
        grad[:, axis] = (head_field(shifted, s) - value) / eps
    return value, grad


def project_to_surface(points: FloatArray, s: HeadSculpt, steps: int) -> FloatArray:
    """(N, 3) points moved onto ``f = 0`` by Newton steps along the field gradient."""
    for _ in range(steps):
        value, grad = field_and_gradient(points, s)
        points = points - (value / np.maximum(np.sum(grad * grad, axis=1), 1e-12))[:, None] * grad
    return points


def neighbour_mean(points: FloatArray, faces: NDArray[np.int64]) -> FloatArray:
    """(N, 3) mean of each vertex's one-ring neighbours (each edge counted once per side)."""
    edges = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])  # (3F, 2) directed
    total = np.zeros_like(points)
    np.add.at(total, edges[:, 0], points[edges[:, 1]])
    count = np.bincount(edges[:, 0], minlength=points.shape[0]).astype(np.float64)
    return total / count[:, None]


def relax(points: FloatArray, faces: NDArray[np.int64], s: HeadSculpt, r: Relaxation) -> FloatArray:
    """Tangential Laplacian relaxation on the surface (see :class:`Relaxation`)."""
    for _ in range(r.iterations):
        _, normal = field_and_gradient(points, s)
        normal /= np.maximum(np.linalg.norm(normal, axis=1, keepdims=True), 1e-12)
        delta = neighbour_mean(points, faces) - points
        delta -= np.sum(delta * normal, axis=1, keepdims=True) * normal
        points = project_to_surface(points + r.rate * delta, s, 1)
    return project_to_surface(points, s, r.projections)


def mesh_head(cfg: ShapeConfig) -> tuple[FloatArray, NDArray[np.int64]]:
    """Vertices (V, 3) in the sculpt frame and outward triangles (F, 3)."""
    directions, faces = sphere_triangulation(cfg.num_vertices, cfg.raycast.face_direction, cfg.raycast.face_zoom)
    points = cast_to_surface(directions, cfg.sculpt, cfg.raycast)
    return relax(points, faces, cfg.sculpt, cfg.relaxation), faces
