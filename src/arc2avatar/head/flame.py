"""FLAME as a ``HeadModel``: a safe loader, region masks and linear blend skinning (docs/method.md §3).

Users supply FLAME themselves (``flame2023_Open.pkl`` is CC-BY-4.0; ``flame2023.pkl`` and
``generic_model.pkl`` are MPI non-commercial); docs/method.md §3 describes the files.

Written by hand, and why:
- **A restricted unpickler.** FLAME ships as Python-2 pickles. ``pickle.load`` on a user file
  would run any callable the file names, and FLAME 2020 files name ``chumpy.ch.Ch``, a package
  that no longer imports on current numpy. ``_FlameUnpickler.find_class`` allows only numpy array
  reconstruction, builtin containers, and scipy CSC/CSR matrices and chumpy objects, the last two
  mapped to inert stubs that keep their pickled state (chumpy's ``Ch.__getstate__`` pickles its
  ``__dict__`` minus caches; a plain ``Ch`` holds its array in ``'x'``). Anything else is refused
  with an ``InputError`` naming the class, before it can run.
- **Linear blend skinning** (``FlameSkinning``): Rodrigues rotations, joint regression, the
  kinematic chain and the pose-corrective blendshapes, ~40 lines of torch; depending on smplx or
  FLAME_PyTorch for that would bring their model loaders (and chumpy) with them.
- **Derived region masks** when ``FLAME_masks.pkl`` is not given (the Open licence does not cover
  it): a documented geometric rule, ``DerivedMaskConfig``.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import pickle
import zipfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
from torch import Tensor

from arc2avatar._io import atomic_path, npz_size_problem
from arc2avatar.errors import InputError
from arc2avatar.head.flame_mouth import FlameMouth, FlameMouthConfig, flame_mouth
from arc2avatar.head.frame import FrameTransform, WorldFrameConfig, to_world_frame
from arc2avatar.head.model import HeadModel
from arc2avatar.head.upsample import blend_rows

# The arrays a FLAME model must provide (the key names of the official pickles).
FLAME_KEYS: tuple[str, ...] = ("v_template", "f", "shapedirs", "posedirs", "J_regressor", "weights", "kintree_table")
_NPZ_MAGIC = b"PK\x03\x04"
_ROOT_PARENT_SENTINELS = (-1, 4294967295)  # kintree_table[0, 0]: int -1 or uint32 max
# Most bytes a FLAME file may hold once decompressed (a .npz) or read (a .pkl): FLAME 2023's
# arrays are ≈ 60 MB as float64 (shapedirs 5023×3×400, posedirs 5023×3×36); 1 GiB leaves room
# for the dense J_regressor and float64 everywhere, and stops a decompression bomb up front.
MAX_FLAME_BYTES = 1 << 30


@dataclass(frozen=True)
class DerivedMaskConfig:
    """Geometric region rule used when no ``FLAME_masks.pkl`` is given (world frame, height 2).

    The skin is the largest connected component of the mesh; smaller components (FLAME's
    eyeballs) form ``eyes``. A skin vertex is **face** iff its z lies in ``face_z_band``, it sits
    in front of the bounding-box centre by at least ``face_min_y`` and its vertex normal has a
    +y component ≥ ``face_min_normal_y`` (front-facing). Eye components whose centroid passes the
    band and ``face_min_y`` tests join the face (they show through the eye openings). ``neck`` =
    skin vertices with z < ``neck_max_z``; ``scalp`` = the remaining skin outside face and neck.
    These thresholds are ours (no paper number): they approximate FLAME_masks' ``face`` region.

    Attributes:
        face_z_band: (low, high) z range of the face, world units (the head spans z ∈ [−1, 1]).
        face_min_y: minimum y of face vertices, world units.
        face_min_normal_y: minimum +y component of a face vertex's unit normal.
        neck_max_z: z below which skin is ``neck``, world units.
    """

    face_z_band: tuple[float, float] = (-0.45, 0.70)
    face_min_y: float = 0.0
    face_min_normal_y: float = 0.2
    neck_max_z: float = -0.55


@dataclass(frozen=True)
class FlameConfig:
    """How a FLAME file becomes a ``HeadModel`` (docs/method.md §3; docs/method.md §3).

    Attributes:
        num_vertices: FLAME 2020/2023 vertex count (5023).
        num_faces: FLAME triangle count (9976).
        num_joints: FLAME joints (5: global, neck, jaw, left eye, right eye).
        num_shape: identity shape components at the start of ``shapedirs`` (300).
        num_expressions: expression components after them (100: columns 300..399).
        skin_color: uniform mean colour, RGB in [0, 1] (FLAME has no colour; ours).
        pose_joints: pose name → FLAME joint index, axis-angle in FLAME's frame, radians.
        frame: placement in the world frame (height 2).
        derived_masks: the rule used without a masks file.
        mouth: the inside of the mouth put behind FLAME's lips (``head.flame_mouth``); None:
            none (avatars made before it, whose bundles record no ``mouth``).
    """

    num_vertices: int = 5023
    num_faces: int = 9976
    num_joints: int = 5
    num_shape: int = 300
    num_expressions: int = 100
    skin_color: tuple[float, float, float] = (0.80, 0.62, 0.52)
    pose_joints: tuple[tuple[str, int], ...] = (("neck", 1), ("jaw", 2), ("left_eye", 3), ("right_eye", 4))
    frame: WorldFrameConfig = field(default_factory=WorldFrameConfig)
    derived_masks: DerivedMaskConfig = field(default_factory=DerivedMaskConfig)
    mouth: FlameMouthConfig | None = field(default_factory=FlameMouthConfig)


# --------------------------------------------------------------------------------------------
# Restricted unpickling
# --------------------------------------------------------------------------------------------


class _PickledState:
    """An inert stand-in for a pickled object of a foreign class: it only keeps its state."""

    source_class: str = "?"

    def __setstate__(self, state: Any) -> None:
        self.state = state


class _ChumpyStub(_PickledState):
    """Stands in for a ``chumpy`` object (never imported)."""


class _SparseStub(_PickledState):
    """Stands in for a scipy.sparse CSC/CSR matrix; ``to_dense`` rebuilds it from its state."""

    sparse_format: str = "csc"

    def to_dense(self) -> np.ndarray:
        import scipy.sparse as sp

        state = self.state
        shape = state.get("_shape", state.get("shape"))
        build = sp.csc_matrix if self.sparse_format == "csc" else sp.csr_matrix
        matrix = build((state["data"], state["indices"], state["indptr"]), shape=tuple(shape))
        return np.asarray(matrix.toarray())


_MODULE_ALIASES = {"__builtin__": "builtins", "copy_reg": "copyreg"}
_BUILTINS_ALLOWED = frozenset({"set", "frozenset", "list", "dict", "tuple", "object", "complex", "bytearray", "slice"})
_NUMPY_ALLOWED = {
    ("numpy", "ndarray"): ("numpy", "ndarray"),
    ("numpy", "dtype"): ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"): ("numpy.{core}.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"): ("numpy.{core}.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"): ("numpy.{core}.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"): ("numpy.{core}.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"): ("numpy.{core}.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"): ("numpy.{core}.numeric", "_frombuffer"),
}
_SPARSE_MODULES = frozenset(
    {"scipy.sparse", "scipy.sparse.csc", "scipy.sparse._csc", "scipy.sparse.csr", "scipy.sparse._csr"}
)
_SPARSE_CLASSES = {"csc_matrix": "csc", "csr_matrix": "csr", "csc_array": "csc", "csr_array": "csr"}


class _RefusedClass(Exception):
    """Raised inside unpickling when the file names a class outside the allow-list."""

    def __init__(self, qualified: str) -> None:
        super().__init__(qualified)
        self.qualified = qualified


def _numpy_attribute(template: str, name: str) -> Any:
    """Resolve a numpy pickle helper across numpy 1.x (``numpy.core``) and 2.x (``numpy._core``)."""
    for core in ("_core", "core"):
        with contextlib.suppress(ImportError, AttributeError):
            return getattr(importlib.import_module(template.format(core=core)), name)
    raise _RefusedClass(f"{template.format(core='core')}.{name}")


def _safe_encode(text: str, encoding: str) -> bytes:
    """``_codecs.encode`` as protocol-2 pickles use it for bytes, limited to latin-1."""
    if encoding != "latin1":
        raise _RefusedClass(f"_codecs.encode with encoding {encoding!r}")
    return text.encode("latin1")


def _safe_reconstructor(cls: type, base: type, state: Any) -> Any:
    """``copyreg._reconstructor`` (protocol 0/1 objects) for our stubs only."""
    if not (isinstance(cls, type) and issubclass(cls, _PickledState) and base is object and state is None):
        raise _RefusedClass(f"copyreg._reconstructor({getattr(cls, '__name__', cls)!r}, {base!r})")
    return object.__new__(cls)


class _FlameUnpickler(pickle.Unpickler):
    """Unpickler with an allow-list (module docstring); stub classes are made per instance."""

    def __init__(self, file: io.BufferedIOBase) -> None:
        super().__init__(file, encoding="latin1")
        self._stubs: dict[str, type] = {}

    def _stub(self, base: type, qualified: str, **attributes: Any) -> type:
        if qualified not in self._stubs:
            self._stubs[qualified] = type(base.__name__, (base,), {"source_class": qualified, **attributes})
        return self._stubs[qualified]

    def find_class(self, module: str, name: str) -> Any:  # noqa: D401 - pickle API
        module = _MODULE_ALIASES.get(module, module)
        qualified = f"{module}.{name}"
        if module == "builtins" and name in _BUILTINS_ALLOWED:
            return getattr(__import__("builtins"), name)
        if (module, name) in _NUMPY_ALLOWED:
            template, attribute = _NUMPY_ALLOWED[(module, name)]
            if template == "numpy":
                return getattr(np, attribute)
            return _numpy_attribute(template, attribute)
        if module == "_codecs" and name == "encode":
            return _safe_encode
        if module == "copyreg" and name == "_reconstructor":
            return _safe_reconstructor
        if module in _SPARSE_MODULES and name in _SPARSE_CLASSES:
            return self._stub(_SparseStub, qualified, sparse_format=_SPARSE_CLASSES[name])
        if module == "chumpy" or module.startswith("chumpy."):
            return self._stub(_ChumpyStub, qualified)
        raise _RefusedClass(qualified)


def safe_unpickle(path: Path, what: str = "FLAME file") -> Any:
    """Unpickle ``path`` through the allow-list; every failure is an ``InputError`` naming it."""
    try:
        if path.stat().st_size > MAX_FLAME_BYTES:
            raise InputError(f"{what} {path} is larger than {MAX_FLAME_BYTES >> 20} MiB; not a FLAME model")
        data = path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"{what} {path} does not exist: download it from flame.is.tue.mpg.de") from None
    except OSError as error:
        raise InputError(f"{what} {path} cannot be read: {error}") from None
    try:
        return _FlameUnpickler(io.BytesIO(data)).load()
    except _RefusedClass as refused:
        raise InputError(
            f"{what} {path} refers to {refused.qualified}, which a FLAME model never needs; "
            "refusing to load it (it could run code). Use the file from flame.is.tue.mpg.de."
        ) from None
    except Exception as error:  # any unpickling failure of a user file is an input problem
        raise InputError(
            f"{what} {path} is not a readable FLAME pickle ({type(error).__name__}: {' '.join(str(error).split())}); "
            "is the file complete (not truncated) and really a .pkl from flame.is.tue.mpg.de?"
        ) from None


# --------------------------------------------------------------------------------------------
# Arrays: read, convert, validate
# --------------------------------------------------------------------------------------------


def _to_array(value: Any, key: str, path: Path) -> np.ndarray:
    """A loaded value as a dense ndarray (chumpy ``Ch`` → its ``x``; sparse → dense)."""
    if isinstance(value, _SparseStub):
        try:
            return value.to_dense()
        except Exception as error:
            broken = f"a broken {value.source_class} ({type(error).__name__}: {error})"
            raise InputError(f"FLAME file {path}: '{key}' is {broken}") from None
    if isinstance(value, _ChumpyStub):
        state = value.state if isinstance(getattr(value, "state", None), dict) else {}
        if value.source_class == "chumpy.ch.Ch" and "x" in state:
            return np.asarray(state["x"])
        raise InputError(
            f"FLAME file {path}: '{key}' is a {value.source_class} expression, not a stored array; "
            "convert the file with a chumpy installation or use FLAME 2023 Open"
        )
    if hasattr(value, "toarray"):  # a real scipy sparse matrix (only reachable from our own callers)
        return np.asarray(value.toarray())
    try:
        return np.asarray(value)
    except Exception as error:
        raise InputError(f"FLAME file {path}: '{key}' is not an array ({type(value).__name__}: {error})") from None


def _read_raw(path: Path) -> Mapping[str, Any]:
    """The key → value mapping of a FLAME ``.pkl`` or converted ``.npz``."""
    try:
        head = path.open("rb").read(4)
    except FileNotFoundError:
        raise InputError(f"FLAME file {path} does not exist: download it from flame.is.tue.mpg.de") from None
    except OSError as error:
        raise InputError(f"FLAME file {path} cannot be read: {error}") from None
    if head == _NPZ_MAGIC:
        problem = npz_size_problem(path, MAX_FLAME_BYTES)
        if problem:
            raise InputError(f"FLAME file {path}: {problem}")
        try:
            with np.load(path, allow_pickle=False) as npz:
                return {key: npz[key] for key in npz.files}
        except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError) as error:
            raise InputError(f"FLAME file {path} is not a readable .npz ({type(error).__name__}: {error})") from None
    raw = safe_unpickle(path)
    if not isinstance(raw, dict):
        raise InputError(f"FLAME file {path} holds a {type(raw).__name__}, expected a dict of FLAME arrays")
    return raw


def _expect_shape(array: np.ndarray, key: str, expected: tuple[int | None, ...], path: Path, hint: str = "") -> None:
    ok = array.ndim == len(expected) and all(e is None or a == e for a, e in zip(array.shape, expected))
    if not ok:
        shown = "×".join("?" if e is None else str(e) for e in expected)
        raise InputError(f"FLAME file {path}: '{key}' has shape {tuple(array.shape)}, expected ({shown}){hint}")


def read_flame_arrays(path: str | Path, config: FlameConfig = FlameConfig()) -> dict[str, np.ndarray]:
    """The validated FLAME arrays of a ``.pkl`` or ``.npz`` in FLAME's own frame (metres, y up).

    Returns ``FLAME_KEYS`` → arrays: v_template (V,3) float64, f (F,3) int64, shapedirs (V,3,≥S+E)
    float64, posedirs (V,3,9·(J−1)) float64, J_regressor (J,V) float64 (dense), weights (V,J)
    float64, kintree_table (2,J) int64 with the root's parent set to −1.
    """
    path = Path(path)
    raw = _read_raw(path)
    missing = [key for key in FLAME_KEYS if key not in raw]
    if missing:
        raise InputError(
            f"FLAME file {path} lacks {', '.join(repr(k) for k in missing)}: is it a FLAME 2020/2023 model "
            "(generic_model.pkl, flame2023.pkl, flame2023_Open.pkl)?"
        )
    arrays = {key: _to_array(raw[key], key, path) for key in FLAME_KEYS}
    V, F, J = config.num_vertices, config.num_faces, config.num_joints
    v_template = arrays["v_template"]
    if v_template.ndim == 2 and v_template.shape[1] == 3 and v_template.shape[0] != V:
        raise InputError(
            f"FLAME file {path} has {v_template.shape[0]} vertices, expected {V}: is it a FLAME 2020/2023 model?"
        )
    _expect_shape(v_template, "v_template", (V, 3), path)
    _expect_shape(arrays["f"], "f", (F, 3), path, ": is it a FLAME 2020/2023 model?")
    _expect_shape(arrays["shapedirs"], "shapedirs", (V, 3, None), path)
    needed = config.num_shape + config.num_expressions
    if arrays["shapedirs"].shape[2] < needed:
        raise InputError(
            f"FLAME file {path}: 'shapedirs' has {arrays['shapedirs'].shape[2]} components, expected at least "
            f"{needed} ({config.num_shape} shape + {config.num_expressions} expression)"
        )
    _expect_shape(arrays["posedirs"], "posedirs", (V, 3, 9 * (J - 1)), path)
    _expect_shape(arrays["J_regressor"], "J_regressor", (J, V), path)
    _expect_shape(arrays["weights"], "weights", (V, J), path)
    _expect_shape(arrays["kintree_table"], "kintree_table", (2, J), path)
    faces = arrays["f"]
    if not np.issubdtype(faces.dtype, np.integer) or faces.min() < 0 or faces.max() >= V:
        raise InputError(f"FLAME file {path}: 'f' must hold vertex indices in [0, {V})")
    for key in ("v_template", "shapedirs", "posedirs", "J_regressor", "weights"):
        if not np.issubdtype(arrays[key].dtype, np.number) or not np.isfinite(arrays[key]).all():
            raise InputError(f"FLAME file {path}: '{key}' must hold finite numbers")
        arrays[key] = arrays[key].astype(np.float64)
    arrays["f"] = faces.astype(np.int64)
    arrays["kintree_table"] = _parents_table(arrays["kintree_table"], path)
    return arrays


def _parents_table(table: np.ndarray, path: Path) -> np.ndarray:
    """kintree_table as int64 with the root's parent −1; each parent must precede its child."""
    table = table.astype(np.int64)
    if int(table[0, 0]) in _ROOT_PARENT_SENTINELS:
        table[0, 0] = -1
    parents = table[0]
    if parents[0] != -1 or any(not 0 <= parents[k] < k for k in range(1, parents.shape[0])):
        raise InputError(
            f"FLAME file {path}: 'kintree_table' is not a kinematic tree in joint order: {table[0].tolist()}"
        )
    return table


def read_flame_masks(path: str | Path, num_vertices: int) -> dict[str, np.ndarray]:
    """``FLAME_masks.pkl`` → name → (V,) bool masks. It must contain ``face``."""
    path = Path(path)
    raw = safe_unpickle(path, what="FLAME masks file")
    if not isinstance(raw, dict) or "face" not in raw:
        raise InputError(f"FLAME masks file {path} must be a dict of vertex-index arrays with a 'face' entry")
    masks: dict[str, np.ndarray] = {}
    for name, value in raw.items():
        indices = np.asarray(_to_array(value, str(name), path)).reshape(-1)
        in_range = indices.size == 0 or (indices.min() >= 0 and indices.max() < num_vertices)
        if not np.issubdtype(indices.dtype, np.integer) or not in_range:
            raise InputError(f"FLAME masks file {path}: '{name}' must hold vertex indices in [0, {num_vertices})")
        mask = np.zeros(num_vertices, dtype=bool)
        mask[indices] = True
        masks[str(name)] = mask
    if "left_eyeball" in masks and "right_eyeball" in masks and "eyes" not in masks:
        masks["eyes"] = masks["left_eyeball"] | masks["right_eyeball"]
    return masks


def convert_flame_to_npz(pkl: str | Path, out_npz: str | Path, config: FlameConfig = FlameConfig()) -> Path:
    """Convert a FLAME pickle to a plain ``.npz`` (no pickle, dense J_regressor), written atomically.

    The result loads with ``load_flame`` (or ``np.load``). Mind the licence: only FLAME 2023 Open
    conversions may be redistributed (CC-BY-4.0, with attribution).
    """
    arrays = read_flame_arrays(pkl, config)
    out = Path(out_npz)
    with atomic_path(out) as tmp:
        with tmp.open("wb") as handle:
            np.savez(handle, **arrays)  # uncompressed: the float blendshapes barely compress
    return out


# --------------------------------------------------------------------------------------------
# Skinning
# --------------------------------------------------------------------------------------------


def axis_angle_to_matrix(axis_angle: Tensor, small_angle: float = 1e-4) -> Tensor:
    """Rodrigues: (..., 3) axis-angle (radians) → (..., 3, 3) rotations.

    R = I + a·[ω]× + b·[ω]×² with a = sin θ/θ, b = (1 − cos θ)/θ², θ = |ω|; below ``small_angle``
    (radians) a and b use their Taylor series, so R is exactly I at ω = 0 and smooth there.
    """
    theta_sq = (axis_angle * axis_angle).sum(-1)[..., None, None]  # (..., 1, 1)
    small = theta_sq < small_angle**2
    theta = torch.sqrt(torch.where(small, torch.ones_like(theta_sq), theta_sq))
    a = torch.where(small, 1.0 - theta_sq / 6.0, torch.sin(theta) / theta)
    b = torch.where(small, 0.5 - theta_sq / 24.0, (1.0 - torch.cos(theta)) / (theta * theta))
    x, y, z = axis_angle.unbind(-1)
    zero = torch.zeros_like(x)
    K = torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], dim=-1).reshape(*axis_angle.shape[:-1], 3, 3)
    eye = torch.eye(3, dtype=axis_angle.dtype, device=axis_angle.device).expand_as(K)
    return eye + a * K + b * (K @ K)


@dataclass(frozen=True)
class FlameSkinning:
    """FLAME's linear blend skinning on world-frame vertices (a ``HeadModel.pose_fn``).

    Call with (V, 3) world vertices (neutral plus expression) and a pose dict of (3,) axis-angle
    tensors in FLAME's frame (radians); returns the posed (V, 3) world vertices. Steps (FLAME):
    joints = J_regressor·vertices; R_k = Rodrigues(pose_k); pose-corrective offsets =
    posedirs·vec(R_1..R_{J−1} − I); world transforms along the kinematic chain; each vertex
    moved by Σ_k weights_vk·A_k. Unposed joints rotate by I.

    Attributes:
        transform: FLAME frame → world frame.
        j_regressor: (J, V) joint regressor over the vertices this skinning receives.
        weights: (V, J) skinning weights (rows sum to 1).
        posedirs: (V, 3, 9·(J−1)) pose-corrective displacements, already in world units.
        parents: J parent indices, −1 for the root.
        pose_joints: pose name → joint index.
    """

    transform: FrameTransform
    j_regressor: Tensor
    weights: Tensor
    posedirs: Tensor
    parents: tuple[int, ...]
    pose_joints: tuple[tuple[str, int], ...]

    @property
    def pose_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.pose_joints)

    def __call__(self, vertices: Tensor, pose: Mapping[str, Tensor]) -> Tensor:
        joint_of = dict(self.pose_joints)
        unknown = sorted(set(pose) - set(joint_of))
        if unknown:
            raise ValueError(f"unknown FLAME pose {unknown}; known: {', '.join(joint_of)}")
        dtype, device = vertices.dtype, vertices.device
        num_joints = len(self.parents)
        rows = [torch.zeros(3, dtype=dtype, device=device) for _ in range(num_joints)]
        for name, value in pose.items():
            rows[joint_of[name]] = torch.as_tensor(value, dtype=dtype, device=device).reshape(3)
        axis_angle = torch.stack(rows)  # (J, 3), FLAME frame
        rot_flame = axis_angle_to_matrix(axis_angle)  # (J, 3, 3)
        rot_world = self.transform.apply_rotations(rot_flame)
        eye = torch.eye(3, dtype=dtype, device=device)
        pose_feature = (rot_flame[1:] - eye).reshape(-1)  # (9·(J−1),)
        posed = vertices + torch.einsum("vcp,p->vc", self.posedirs.to(vertices), pose_feature)
        inverse = self.transform.inverse()
        joints = self.transform.apply_points(self.j_regressor.to(vertices) @ inverse.apply_points(vertices))  # (J,3)
        transforms = self._chain(rot_world, joints)  # (J, 3, 4)
        blended = torch.einsum("vj,jab->vab", self.weights.to(vertices), transforms)  # (V, 3, 4)
        return torch.einsum("vab,vb->va", blended[..., :3], posed) + blended[..., 3]

    def _chain(self, rotations: Tensor, joints: Tensor) -> Tensor:
        """(J, 3, 4) skinning transforms A_k = G_k·[I | −j_k] along the kinematic chain."""
        globals_rt: list[tuple[Tensor, Tensor]] = []
        for k, parent in enumerate(self.parents):
            if parent < 0:
                globals_rt.append((rotations[k], joints[k]))
                continue
            parent_rot, parent_t = globals_rt[parent]
            globals_rt.append((parent_rot @ rotations[k], parent_t + parent_rot @ (joints[k] - joints[parent])))
        rows = [torch.cat([rot, (t - rot @ joints[k]).unsqueeze(-1)], dim=-1) for k, (rot, t) in enumerate(globals_rt)]
        return torch.stack(rows)

    def to(self, device: torch.device | str) -> "FlameSkinning":
        """The same skinning with its tensors on ``device`` (avoids a copy per call)."""
        return replace(
            self,
            j_regressor=self.j_regressor.to(device),
            weights=self.weights.to(device),
            posedirs=self.posedirs.to(device),
        )

    def upsampled(self, parent_index: Tensor, parent_weight: Tensor) -> "FlameSkinning":
        """The same skinning for an upsampled mesh whose first V vertices are the originals.

        Weights and pose correctives are blended through the parents (so posing an upsampled mesh
        approximates upsampling a posed one: LBS is not linear in the weights); the joints are
        regressed from the original vertices, which the upsampled mesh keeps at rows 0..V−1.
        """
        num_original = int(self.weights.shape[0])
        head_rows = torch.arange(num_original, device=parent_index.device)
        originals_first = torch.equal(parent_index[:num_original, 0], head_rows)
        if not (originals_first and bool((parent_weight[:num_original, 0] == 1).all())):
            raise ValueError("upsampled skinning needs the original vertices first, in order, each its own parent")
        j_regressor = self.j_regressor.new_zeros(self.j_regressor.shape[0], parent_index.shape[0])  # (J, V')
        j_regressor[:, :num_original] = self.j_regressor
        return FlameSkinning(
            transform=self.transform,
            j_regressor=j_regressor,
            weights=blend_rows(self.weights, parent_index, parent_weight),
            posedirs=blend_rows(self.posedirs, parent_index, parent_weight),
            parents=self.parents,
            pose_joints=self.pose_joints,
        )


# --------------------------------------------------------------------------------------------
# Masks and the HeadModel
# --------------------------------------------------------------------------------------------


def derive_flame_masks(
    vertices: np.ndarray, faces: np.ndarray, config: DerivedMaskConfig = DerivedMaskConfig()
) -> dict[str, np.ndarray]:
    """Region masks of a world-frame FLAME-like mesh by the rule of ``DerivedMaskConfig``."""
    import scipy.sparse as sp
    import trimesh
    from scipy.sparse.csgraph import connected_components

    num_vertices = vertices.shape[0]
    edges = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    graph = sp.coo_matrix((np.ones(len(edges)), (edges[:, 0], edges[:, 1])), shape=(num_vertices, num_vertices))
    _, labels = connected_components(graph, directed=False)
    referenced = np.zeros(num_vertices, dtype=bool)
    referenced[faces.reshape(-1)] = True
    sizes = np.bincount(labels[referenced], minlength=labels.max() + 1)
    skin = referenced & (labels == int(np.argmax(sizes)))
    eyes = referenced & ~skin
    normals = np.asarray(trimesh.Trimesh(vertices, faces, process=False).vertex_normals)
    z, y = vertices[:, 2], vertices[:, 1]
    low, high = config.face_z_band
    in_band = (z >= low) & (z <= high) & (y >= config.face_min_y)
    face = skin & in_band & (normals[:, 1] >= config.face_min_normal_y)
    for label in np.unique(labels[eyes]):
        component = eyes & (labels == label)
        centre = vertices[component].mean(axis=0)
        if low <= centre[2] <= high and centre[1] >= config.face_min_y:
            face |= component
    neck = skin & (z < config.neck_max_z) & ~face
    scalp = skin & ~face & ~neck
    return {"face": face, "eyes": eyes, "neck": neck, "scalp": scalp}


def flame_head(
    arrays: Mapping[str, np.ndarray],
    name: str,
    masks: Mapping[str, np.ndarray] | None = None,
    config: FlameConfig = FlameConfig(),
) -> HeadModel:
    """A world-frame ``HeadModel`` from validated FLAME arrays (see ``read_flame_arrays``).

    FLAME's vertices and triangles come first, in FLAME's order (so FLAME's vertex and triangle
    indices, e.g. a landmark embedding's, stay valid); with ``config.mouth`` and lips that open
    with the jaw, the inside of the mouth follows (``head.flame_mouth``): face vertices in the
    regions ``mouth_interior``, ``oral_cavity``, ``upper_teeth``, ``lower_teeth``, ``tongue``,
    with no expression displacement, skinned to the skull or the jaw.
    """
    v_flame = torch.from_numpy(arrays["v_template"])  # (V, 3) float64, metres, y up
    vertices, transform = to_world_frame(v_flame, config.frame)
    faces = torch.from_numpy(arrays["f"]).long()
    start, stop = config.num_shape, config.num_shape + config.num_expressions
    expressions = transform.apply_vectors(torch.from_numpy(arrays["shapedirs"][:, :, start:stop]), dim=1)
    posedirs = transform.apply_vectors(torch.from_numpy(arrays["posedirs"]), dim=1)
    if masks is None:
        masks = derive_flame_masks(vertices.numpy(), arrays["f"], config.derived_masks)
    region_masks = {key: torch.from_numpy(np.asarray(value, dtype=bool)) for key, value in masks.items()}
    j_regressor = torch.from_numpy(arrays["J_regressor"]).float()
    weights = torch.from_numpy(arrays["weights"]).float()
    num_vertices = vertices.shape[0]
    colours = torch.tensor(config.skin_color, dtype=torch.float32).expand(num_vertices, 3).clone()
    vertices, expressions, posedirs = vertices.float(), expressions.float(), posedirs.float()
    mouth = None
    if config.mouth is not None:
        mouth = flame_mouth(vertices.double().numpy(), arrays["f"], arrays["weights"], dict(config.pose_joints)["jaw"],
                            config.mouth)
    if mouth is not None:
        vertices, faces, region_masks, expressions, colours, j_regressor, weights, posedirs = _with_mouth(
            mouth, vertices, faces, region_masks, expressions, colours, j_regressor, weights, posedirs)
    regions = {key: value for key, value in region_masks.items() if key != "face"}
    skinning = FlameSkinning(
        transform=transform,
        j_regressor=j_regressor,
        weights=weights,
        posedirs=posedirs,
        parents=tuple(int(p) for p in arrays["kintree_table"][0]),
        pose_joints=config.pose_joints,
    )
    return HeadModel(
        name=name,
        vertices=vertices,
        faces=faces,
        face_mask=region_masks["face"],
        regions=regions,
        expression_names=[f"exp_{i:03d}" for i in range(config.num_expressions)],
        expression_basis=expressions.contiguous(),
        vertex_colors=colours,
        pose_fn=skinning,
        pose_names=skinning.pose_names,
    )


def _with_mouth(mouth: FlameMouth, vertices: Tensor, faces: Tensor, masks: dict[str, Tensor], expressions: Tensor,
                colours: Tensor, j_regressor: Tensor, weights: Tensor, posedirs: Tensor) -> tuple[Any, ...]:
    """Every per-vertex array with the mouth's rows appended (after FLAME's, in that order)."""
    count, num_vertices = len(mouth.points), vertices.shape[0]

    def append(values: Tensor, extra: Tensor | np.ndarray) -> Tensor:
        return torch.cat([values, torch.as_tensor(extra).to(values.dtype)])

    masks = {key: append(value, np.zeros(count, dtype=bool)) for key, value in masks.items()}
    masks["face"][num_vertices:] = True  # the mouth's splats are bound face splats
    for key, value in mouth.region_masks().items():
        masks[key] = torch.cat([torch.zeros(num_vertices, dtype=torch.bool), torch.from_numpy(value)])
    return (
        append(vertices, mouth.points),
        append(faces, mouth.faces + num_vertices),
        masks,
        append(expressions, torch.zeros(count, *expressions.shape[1:])),  # teeth and cavity keep their shape
        append(colours, mouth.colours),
        torch.cat([j_regressor, j_regressor.new_zeros(j_regressor.shape[0], count)], dim=1),  # joints: FLAME's own
        append(weights, mouth.weights),
        append(posedirs, torch.zeros(count, *posedirs.shape[1:])),  # no pose correctives: rigid parts
    )


def load_flame(
    path: str | Path, masks_path: str | Path | None = None, config: FlameConfig = FlameConfig()
) -> HeadModel:
    """Load a FLAME model (``.pkl`` or converted ``.npz``) as a world-frame ``HeadModel``.

    Args:
        path: ``flame2023_Open.pkl``, ``flame2023.pkl``, ``generic_model.pkl`` or a ``.npz`` made
            by ``convert_flame_to_npz``. Pickles go through a restricted unpickler.
        masks_path: optional ``FLAME_masks.pkl``; without it the regions are derived
            (``DerivedMaskConfig``).
        config: counts, expression slice, colour, pose joints, frame.

    Returns:
        A ``HeadModel`` named after the file stem: 5023 vertices, 9976 faces, expressions
        ``exp_000``…``exp_099`` (shapedirs columns 300..399, world units per unit weight),
        ``pose_fn`` = ``FlameSkinning`` for ``neck``, ``jaw``, ``left_eye``, ``right_eye``.

    Raises:
        InputError: missing, unreadable, truncated, unsafe or wrongly shaped files.
    """
    path = Path(path)
    arrays = read_flame_arrays(path, config)
    masks = read_flame_masks(masks_path, config.num_vertices) if masks_path is not None else None
    return flame_head(arrays, name=path.stem, masks=masks, config=config)


# --------------------------------------------------------------------------------------------
# A synthetic FLAME for tests and benchmarks (no FLAME data; random but valid, real counts)
# --------------------------------------------------------------------------------------------


__all__ = [
    "DerivedMaskConfig",
    "FLAME_KEYS",
    "FlameConfig",
    "FlameSkinning",
    "axis_angle_to_matrix",
    "convert_flame_to_npz",
    "derive_flame_masks",
    "flame_head",
    "load_flame",
    "read_flame_arrays",
    "read_flame_masks",
    "safe_unpickle",
]
