"""The oracle prior: a known 3D head stands in for the diffusion model (docs/method.md §2.4).

A diagnostic, kept in the library: the pipeline runs unchanged, but the guidance's denoised
estimate for each view is the render of a known target head from the same camera, with the same
background, through the same ISM/SDS plumbing (``arc2avatar.prior.oracle.OracleDenoiser``: the
positive branch answers the target, every other branch the current render, so ISM pulls with
g = λ·cfg·(z − z*)). If the optimisation rebuilds the target from views it never trained on,
the 3D machinery works.

Targets (``OracleTarget``): a mesh with per-vertex colours — by default the built-in head with a
painted "hair" cap and, optionally, a photo projected onto its face (``photo_texture``: a
frontal projector aligned by the photo's five landmarks, sampled at the photo's resolution).
With the photo's 68 landmarks, its eyes are also moved down onto the line where the template's
lids meet when they blink, if they lie above it (``eye_shifts``), so that a blink closes over
the photo's eyes instead of dragging the skin above them into a closed eye.
Written by hand: test machinery of ours.
"""

from __future__ import annotations

from dataclasses import dataclass
import logging
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

from arc2avatar.cameras.model import Cameras, orbit_cameras
from arc2avatar.errors import InputError, MissingDependencyError
from arc2avatar.head.model import HeadModel, vertex_normals
from arc2avatar.head.raster import render_mesh
from arc2avatar.identity import dlib_faces
from arc2avatar.identity.align import estimate_similarity
from arc2avatar.identity.image import Photo
from arc2avatar.prior.configs import PriorConfig, scheduler_config
from arc2avatar.prior.guidance import GuidanceContext, GuidanceOutput, IsmGuidance
from arc2avatar.prior.latents import LatentEncoder, RgbLatentEncoder
from arc2avatar.prior.oracle import OracleDenoiser
from arc2avatar.prior.views import ViewEmbeddings

if TYPE_CHECKING:
    from arc2avatar.pipeline.config import CreateConfig  # typing only

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OracleTargetConfig:
    """How the default oracle target differs from the template the avatar starts from.

    Attributes:
        hair_color: RGB in [0, 1] painted on the scalp and the back of the head.
        hair_polar_deg: vertices whose direction from the head centre is within this angle of
            +z (degrees) become hair; behind the ears (y < ``hair_back_y``) as well.
        hair_back_y: world y below which upper-head vertices count as hair (back of the head).
        hair_min_z: world z above which the back of the head counts as hair.
        hair_volume: outward push of hair vertices, world units (a shape the avatar must grow).
        photo_face_width: centred placement (no landmarks): width of the face region the
            photo's centre square covers, world units.
        photo_face_center_z: centred placement: world z of the centre of the photo.
        photo_square_feather: centred placement: fraction of the square's half-side over which
            the photo fades into the template colours.
        photo_oval_half_width, photo_oval_half_height: landmark placement: half-axes of the oval
            of the photo that is projected, in units of the photo's eye distance, centred on
            the mean of the five keypoints (1.25 × 1.6 covers brows to chin, cheek to cheek).
        photo_oval_feather: landmark placement: fraction of the oval's radius over which the
            photo fades into the template colours.
        photo_eye_shift: with the photo's 68 landmarks, move its eyes down when their lower lids
            lie above the line where the template's lids meet at a blink (issue 24: a blink then
            closes onto the photo's lower lids; ``eye_shifts``). They never move up.
        photo_eye_sigma: the shift's reach around each eye: standard deviations of its
            Gaussian falloff across and along the face, in template eye distances (the eye
            and its lids move whole; the brows and the cheek below move less).
    """

    hair_color: tuple[float, float, float] = (0.23, 0.15, 0.10)
    hair_polar_deg: float = 55.0
    hair_back_y: float = -0.1
    hair_min_z: float = 0.05
    hair_volume: float = 0.04
    photo_face_width: float = 0.95
    photo_face_center_z: float = 0.18
    photo_square_feather: float = 0.15
    photo_oval_half_width: float = 1.25
    photo_oval_half_height: float = 1.6
    photo_oval_feather: float = 0.2
    photo_eye_shift: bool = True
    photo_eye_sigma: tuple[float, float] = (0.3, 0.22)


@dataclass(frozen=True)
class PhotoTexture:
    """A photo projected onto a target mesh by a frontal orthographic projector.

    Rendering interpolates ``uvw`` like a colour (perspective-correct; exact, since u and v are
    affine in the world position) and samples ``image`` at full resolution, so the target shows
    the photo's detail however coarse the mesh is.

    Attributes:
        image: (3, H, W) float32 RGB in [0, 1].
        uvw: (V, 3) float32 per vertex: ``grid_sample`` coordinates x, y in [−1, 1] (align_corners
            False) of the photo pixel it shows, and the photo's blend weight in [0, 1].
    """

    image: Tensor
    uvw: Tensor

    def to(self, device: torch.device | str) -> "PhotoTexture":
        return PhotoTexture(self.image.to(device), self.uvw.to(device))


@dataclass(frozen=True)
class OracleTarget:
    """A coloured triangle mesh the oracle renders (world frame, ``arc2avatar.cameras.model``).

    Attributes:
        vertices: (V, 3) float32; faces: (F, 3) int64; colors: (V, 3) float32 in [0, 1].
        face_triangles: the first ``face_triangles`` rows of ``faces`` are the face region (what
            the face phase renders); 0 = unknown (the whole mesh is used then).
        texture: an optional photo projected onto the mesh, blended over ``colors``.
    """

    vertices: Tensor
    faces: Tensor
    colors: Tensor
    face_triangles: int = 0
    texture: PhotoTexture | None = None

    def to(self, device: torch.device | str) -> "OracleTarget":
        texture = None if self.texture is None else self.texture.to(device)
        return OracleTarget(self.vertices.to(device), self.faces.to(device), self.colors.to(device), self.face_triangles,
                            texture)

    @torch.no_grad()
    def render(self, cameras: Cameras, backgrounds: Tensor | None = None, face_only: bool = False) -> Tensor:
        """(C, H, W, 3) renders in [0, 1] on ``backgrounds`` ((C,3) or (3,); default white);
        ``face_only`` renders just the face region (the face phase's counterpart)."""
        if backgrounds is None:
            backgrounds = torch.ones(3, device=self.vertices.device)
        faces = self.faces[: self.face_triangles] if face_only and self.face_triangles else self.faces
        rgb = render_mesh(self.vertices, faces, self.colors, cameras, backgrounds).rgb
        if self.texture is None:
            return rgb
        # Second pass: the photo coordinates and weight, zero (weight 0) off the mesh.
        uvw = render_mesh(self.vertices, faces, self.texture.uvw, cameras, (0.0, 0.0, 0.0)).rgb  # (C, H, W, 3)
        image = self.texture.image[None].expand(len(cameras), -1, -1, -1)
        photo = torch.nn.functional.grid_sample(image, uvw[..., :2], align_corners=False, padding_mode="border")
        weight = uvw[..., 2:3]
        return rgb * (1 - weight) + photo.permute(0, 2, 3, 1) * weight


def default_target(
    head: HeadModel,
    config: OracleTargetConfig = OracleTargetConfig(),
    photo: np.ndarray | None = None,
    face_triangles: int = 0,
    photo_keypoints: np.ndarray | None = None,
    photo_landmarks: np.ndarray | None = None,
) -> OracleTarget:
    """The template repainted with a hair cap (and pushed out there), optionally with ``photo``
    (H, W, 3 uint8) projected onto the face region (``photo_texture``): aligned by its five
    ``photo_keypoints`` ((5, 2) ArcFace order, pixel indices) when given, else its centre
    square; its eyes placed on the template's lid line by its 68 ``photo_landmarks`` ((68, 2)
    iBUG 300-W, pixel indices) when given (``eye_shifts``). ``face_triangles``: how many leading
    rows of ``head.faces`` form the face region."""
    vertices = head.vertices.clone()
    colors = head.vertex_colors.clone()
    direction = torch.nn.functional.normalize(vertices, dim=-1)
    cos_limit = float(np.cos(np.deg2rad(config.hair_polar_deg)))
    hair = (direction[:, 2] > cos_limit) | ((vertices[:, 1] < config.hair_back_y) & (vertices[:, 2] > config.hair_min_z))
    hair &= ~head.face_mask
    for name in ("ears", "neck"):
        if name in head.regions:
            hair &= ~head.regions[name]
    colors[hair] = torch.tensor(config.hair_color)
    normals = vertex_normals(vertices, head.faces)
    vertices[hair] += config.hair_volume * normals[hair]
    texture = None
    if photo is not None:
        texture = photo_texture(head, vertices, photo, photo_keypoints, config, photo_landmarks)
        colors = _blend_vertex_colors(colors, texture)
        colors = _tint_eyelids(head, colors, texture)
    return OracleTarget(vertices=vertices, faces=head.faces.clone(), colors=colors.clamp(0, 1), face_triangles=face_triangles,
                        texture=texture)


def template_landmarks(head: HeadModel) -> Tensor:
    """(5, 3) template points in the ArcFace template's order as a frontal camera sees them
    (docs/method.md §1: left eye, right eye, nose tip, left / right mouth corner, "left" = image left).

    From the template's regions: eye centres (subject's right eye = world +x = image left),
    the most forward nose vertex, the lips' extreme vertices along x.
    """
    missing = [name for name in ("left_eye", "right_eye", "nose", "lips") if name not in head.regions
               or not bool(head.regions[name].any())]
    if missing:
        raise InputError(f"template {head.name} has no {', '.join(missing)} region: a photo cannot be aligned to it")
    vertices, regions = head.vertices, head.regions
    nose = vertices[regions["nose"]]
    lips = vertices[regions["lips"]]
    return torch.stack([
        vertices[regions["right_eye"]].mean(0),  # image left in a frontal view
        vertices[regions["left_eye"]].mean(0),
        nose[nose[:, 1].argmax()],
        lips[lips[:, 0].argmax()],  # world +x = image left
        lips[lips[:, 0].argmin()],
    ])


def frontal_plane(points: Tensor) -> Tensor:
    """(N, 3) world points → (N, 2) frontal projector coordinates (u, v) = (−x, −z): u grows to
    the right and v downward of a frontal view (world +x shows on the image's left)."""
    return torch.stack([-points[:, 0], -points[:, 2]], dim=-1)


def photo_placement(head: HeadModel, photo_hw: tuple[int, int], keypoints: np.ndarray | None,
                    config: OracleTargetConfig = OracleTargetConfig()) -> np.ndarray:
    """(3, 3) similarity from frontal projector coordinates (``frontal_plane``) to photo pixels.

    With ``keypoints`` ((5, 2) ArcFace order): the least-squares fit of the template's
    landmarks onto them (``identity.align.estimate_similarity``). Without: the photo's centre
    square spans ``photo_face_width`` centred at height ``photo_face_center_z``.
    """
    height, width = photo_hw
    if keypoints is not None:
        plane = frontal_plane(template_landmarks(head)).double().numpy()
        return estimate_similarity(plane, np.asarray(keypoints, dtype=np.float64))
    side = min(height, width)
    scale = side / config.photo_face_width
    matrix = np.eye(3)
    matrix[0, 0] = matrix[1, 1] = scale
    matrix[:2, 2] = [(width - 1) / 2, (height - 1) / 2 + scale * config.photo_face_center_z]
    return matrix


def photo_texture(head: HeadModel, vertices: Tensor, photo: np.ndarray, keypoints: np.ndarray | None,
                  config: OracleTargetConfig = OracleTargetConfig(), landmarks: np.ndarray | None = None) -> PhotoTexture:
    """Project ``photo`` (H, W, 3 uint8) frontally onto the front of the face region of a mesh.

    With the photo's 68 ``landmarks`` (and ``config.photo_eye_shift``), its eyes are first moved
    onto the template's lid line (``eye_shifts``).

    ``vertices`` (V, 3) are the target's (``head``'s, possibly pushed out). The photo's blend
    weight is 1 inside, fading to 0 over the border of the projected area (an oval around the
    keypoints, or the centre square without them), and 0 off the face mask, behind it and on the
    mouth's inside (regions ``mouth_interior`` and the complement of ``off_lip_seam``: teeth,
    tongue, cavity and the seam that rolls into the open mouth keep their own colours) and on
    the lid shells of a blink (region ``eyelids``: ``default_target`` gives them the photo's
    skin tone).
    """
    height, width = photo.shape[:2]
    matrix = torch.from_numpy(photo_placement(head, (height, width), keypoints, config))
    plane = frontal_plane(vertices.double())
    if keypoints is not None and landmarks is not None and config.photo_eye_shift:
        plane = plane - eye_shifts(head, plane, matrix.numpy(), np.asarray(landmarks, dtype=np.float64), config)
    pixels = plane @ matrix[:2, :2].T + matrix[:2, 2]  # (V, 2) pixel indices
    grid = torch.stack([(pixels[:, 0] + 0.5) / width, (pixels[:, 1] + 0.5) / height], dim=-1) * 2 - 1
    if keypoints is not None:
        points = np.asarray(keypoints, dtype=np.float64)
        centre = torch.from_numpy(points.mean(axis=0))
        eye_distance = float(np.linalg.norm(points[1] - points[0]))
        half_axes = torch.tensor([config.photo_oval_half_width, config.photo_oval_half_height], dtype=torch.float64)
        radius = ((pixels - centre) / (half_axes * eye_distance)).norm(dim=-1)
        weight = ((1 - radius) / config.photo_oval_feather).clamp(0, 1)
    else:
        square = 1 - grid.abs().amax(dim=-1)
        weight = (square / config.photo_square_feather).clamp(0, 1)
    projected = head.face_mask & (vertices[:, 1] > 0)
    if "mouth_interior" in head.regions:  # the photo's lips and teeth must not land on the mouth's inside
        projected &= ~head.regions["mouth_interior"]
    if "eyelids" in head.regions:  # nor the photo's eyes on the lids that cover a closed eye
        projected &= ~head.regions["eyelids"]
    weight = torch.where(projected, weight, torch.zeros_like(weight))
    image = torch.from_numpy(np.array(photo, dtype=np.float32, copy=True)).permute(2, 0, 1) / 255.0
    uvw = torch.cat([grid, weight[:, None]], dim=-1).float()
    return PhotoTexture(image=image.contiguous(), uvw=uvw)


# iBUG 300-W lower-lid points of the image-left eye (the subject's right) and the image-right eye.
LOWER_LID_68 = ((40, 41), (46, 47))
EYE_68 = (tuple(range(36, 42)), tuple(range(42, 48)))
# The lid of each image side: (region, blendshape that closes it); the image's left eye is the subject's right.
LIDS = (("right_eyelid", "blink_right"), ("left_eyelid", "blink_left"))


def lid_meeting_heights(head: HeadModel) -> list[tuple[float, float] | None]:
    """Where the template's lids meet at a blink, per image side (left, right): the frontal-plane
    (u, v) of the middle of its lash line with that eye's blink at 1 (``frontal_plane``), or None
    for a template without lid shells (regions ``eyelid_lash``, ``*_eyelid`` and the blinks)."""
    out: list[tuple[float, float] | None] = []
    for region, blink in LIDS:
        if "eyelid_lash" not in head.regions or region not in head.regions or blink not in head.expression_names:
            out.append(None)
            continue
        lash = head.regions["eyelid_lash"] & head.regions[region]
        closed = head.vertices.double() + head.expression_basis[:, :, head.expression_names.index(blink)].double()
        line = frontal_plane(closed[lash])
        if line.shape[0] == 0:
            out.append(None)
            continue
        centre_u = float((line[:, 0].min() + line[:, 0].max()) / 2)
        middle = line[(line[:, 0] - centre_u).abs().argsort()[:3]]  # the lash vertices nearest its middle
        out.append((centre_u, float(middle[:, 1].mean())))
    return out


def eye_shifts(head: HeadModel, plane: Tensor, placement: np.ndarray, landmarks: np.ndarray,
               config: OracleTargetConfig = OracleTargetConfig()) -> Tensor:
    """(V, 2) float64 frontal-plane offsets to subtract from ``plane`` (the vertices' (u, v),
    ``frontal_plane``) before the 5-point ``placement`` (3, 3) maps them onto the photo: the
    photo's eyes move down by how far its lower lids (``landmarks``, (68, 2) pixel indices,
    mapped back through the placement) lie, on average, above the template's lid line
    (``lid_meeting_heights``), fading with a Gaussian of ``config.photo_eye_sigma`` template eye
    distances around each eye. Zeros when they lie on or below it, or the template has no lid shells.

    A similarity through five points lays a photo's eyes where the fit of its nose and mouth
    allows. On Grace Hopper's portrait (a short eye-to-mouth distance) her lower lids landed 0.031
    above the lid line (7 % of the eye distance), so a blink closed below her eyes and
    dragged her upper lids, brows and the rim of her glasses down into the closed eye; MediaPipe
    read one of them as EAR 0.117 (docs/expressions.md). Both eyes move by one amount, as the
    error is the face's proportion, not either eye's: moved apart they tilted the eye line and
    the open eye read 11 % wider at the other's blink. The astronaut's lower lids lie on the
    line on average (0.003 above, 0.019 below): her target does not change.
    """
    shifts = torch.zeros_like(plane)
    heights = lid_meeting_heights(head)
    if any(height is None for height in heights):
        return shifts
    inverse = np.linalg.inv(placement)
    in_plane = landmarks @ inverse[:2, :2].T + inverse[:2, 2]  # (68, 2) the photo's landmarks in (u, v)
    drop = float(np.mean([meeting_v - in_plane[list(lower), 1].mean()  # v grows downward
                          for (_, meeting_v), lower in zip(heights, LOWER_LID_68)]))
    if drop <= 0.0:
        return shifts
    eye_distance = abs(heights[1][0] - heights[0][0])
    sigma = torch.tensor(config.photo_eye_sigma, dtype=torch.float64) * eye_distance
    for eye in EYE_68:
        centre = torch.from_numpy(in_plane[list(eye)].mean(axis=0))
        falloff = torch.exp(-0.5 * (((plane - centre) / sigma) ** 2).sum(dim=-1))
        shifts[:, 1] += drop * falloff  # a template point here shows the photo from ``drop`` higher up
    return shifts


def _blend_vertex_colors(colors: Tensor, texture: PhotoTexture) -> Tensor:
    """Per-vertex colours with the photo sampled at each vertex blended in (a coarse copy of
    what the textured render shows)."""
    grid = texture.uvw[:, :2].reshape(1, -1, 1, 2)
    sampled = torch.nn.functional.grid_sample(texture.image[None], grid, align_corners=False, padding_mode="border")
    sampled = sampled[0, :, :, 0].T  # (V, 3)
    weight = texture.uvw[:, 2:3]
    return colors * (1 - weight) + sampled * weight


def _tint_eyelids(head: HeadModel, colors: Tensor, texture: PhotoTexture) -> Tensor:
    """The lid shells (region ``eyelids``, not projected) in the photo's skin tone: their template
    colours times the per-channel ratio of the photo's to the template's median colour over the
    plain skin the photo fully covers (the face without eyes, brows, nose and lips)."""
    if "eyelids" not in head.regions or not bool(head.regions["eyelids"].any()):
        return colors
    plain = head.face_mask & (texture.uvw[:, 2] > 0.99)
    for name in ("eyes", "brows", "nose", "lips", "eyelids", "mouth_interior"):
        if name in head.regions:
            plain &= ~head.regions[name]
    if int(plain.sum()) < 10:
        return colors
    gain = colors[plain].median(dim=0).values / head.vertex_colors[plain].median(dim=0).values.clamp_min(1e-3)
    lids = head.regions["eyelids"]
    colors = colors.clone()
    colors[lids] = (head.vertex_colors[lids] * gain).clamp(0, 1)
    return colors


class OraclePrior:
    """A ``GuidancePrior`` whose denoised estimate is the target's render (see module doc).

    Args:
        target: the head to rebuild.
        config: ``PriorConfig`` (ISM/SDS numbers, CFG, λ, flip probability...).
        latent_encoder: how renders become latents (``RgbLatentEncoder`` on CPU; the same VAE
            encoder as the real prior is possible on GPU). The target goes through the same one.
        alphas_cumprod: (1000,) ᾱ of the noise schedule (SD-1.5's by default).
    """

    def __init__(
        self,
        target: OracleTarget,
        config: PriorConfig = PriorConfig(),
        latent_encoder: LatentEncoder | None = None,
        alphas_cumprod: Tensor | None = None,
    ) -> None:
        self.target = target
        if alphas_cumprod is None:
            alphas_cumprod = _scaled_linear_alphas_cumprod(scheduler_config())
        encoder = latent_encoder if latent_encoder is not None else RgbLatentEncoder()
        self._backgrounds: Tensor | None = None
        self._face_only = False
        denoiser = OracleDenoiser(self._target_latents, alphas_cumprod.to(target.vertices.device))
        self._encoder = encoder
        dummy = torch.zeros(77, 8, device=target.vertices.device)
        embeddings = ViewEmbeddings(front=dummy, side=dummy, back=dummy, uncond=dummy, inversion=dummy)
        self.guidance = IsmGuidance(denoiser, encoder, embeddings, alphas_cumprod.to(target.vertices.device), config)

    def __call__(self, renders: Tensor, cameras: Cameras, context: GuidanceContext = GuidanceContext()) -> GuidanceOutput:
        """renders (B, 3, H, W) in [0, 1]; the target is rendered on the context's
        ``backgrounds`` and, in the face phase, only in its face region."""
        self._backgrounds = context.backgrounds
        self._face_only = context.phase == "face"
        try:
            return self.guidance(renders, cameras, context)
        finally:
            self._backgrounds = None
            self._face_only = False

    @torch.no_grad()
    def _target_latents(self, cameras: Cameras, flipped: bool) -> Tensor:
        rgb = self.target.render(cameras, self._backgrounds, self._face_only).permute(0, 3, 1, 2)  # (B, 3, H, W)
        if flipped:
            rgb = rgb.flip(-1)
        return self._encoder.encode(2.0 * rgb - 1.0, None)


def photo_keypoints(photo: Photo) -> tuple[np.ndarray, np.ndarray | None, dict[str, Any], np.ndarray | None]:
    """The demo's photo, its five ArcFace keypoints, how it is placed on the target's face and
    its 68 iBUG 300-W landmarks (which put its eyes on the template's lid line, ``eye_shifts``).

    With dlib installed (the ``eval`` extra) the largest face's landmarks align the photo to the
    template's (``oracle.photo_placement``); no face found is an ``InputError``. Without dlib the
    centre square of the photo is used (a roughly frontal, face-centred picture is expected).
    """
    image, path = photo.pixels, photo.path
    try:
        detector = dlib_faces.DlibFaceDetector()  # dlib itself (the eval extra) loads here
    except MissingDependencyError as error:
        log.warning("%s; placing the centre square of %s on the face instead of aligning its landmarks", error, path)
        height, width = image.shape[:2]
        side = min(height, width)
        top, left = (height - side) // 2, (width - side) // 2
        return image[top:top + side, left:left + side], None, {"path": str(path), "placement": "centre square"}, None
    face = detector.largest_face(image)
    if face is None:
        raise InputError(f"no face found in {path} by dlib's {detector.name} detector: use a frontal photo "
                         "with the face clearly visible (at least ~80 pixels wide)")
    landmarks = detector.landmarks_68(image, face.box)
    info = {"path": str(path), "placement": "5 landmarks (dlib 68-point) + eyes on the lid line",
            "keypoints": np.round(face.keypoints, 2).tolist()}
    return image, face.keypoints, info, landmarks


def _scaled_linear_alphas_cumprod(config: dict[str, Any]) -> Tensor:
    """ᾱ of SD-1.5's scaled-linear schedule (β from √β_start to √β_end, squared)."""
    betas = torch.linspace(config["beta_start"] ** 0.5, config["beta_end"] ** 0.5, config["num_train_timesteps"], dtype=torch.float64) ** 2
    return torch.cumprod(1.0 - betas, dim=0).float()


def frontal_camera(size: int, radius: float = 4.5, fovy: float = 0.7, azimuth_deg: float = 0.0) -> Cameras:
    """One evaluation camera (for previews of targets and avatars)."""
    return orbit_cameras(radius, 90.0, azimuth_deg, fovy, size, size)


__all__ = [
    "OraclePrior", "OracleTarget", "OracleTargetConfig", "PhotoTexture", "default_target", "frontal_camera",
    "eye_shifts", "frontal_plane", "lid_meeting_heights", "photo_keypoints", "photo_placement", "photo_texture", "template_landmarks",
]


def oracle_latent_encoder(config: CreateConfig) -> RgbLatentEncoder:
    """The oracle works in RGB space (no VAE weights are loaded for it): 2x−1, area-resized to
    ``rgb_latent_resolution`` (0 = the render resolution)."""
    if config.latent_encoder != "rgb":
        log.info("the oracle prior uses RGB latents (latent_encoder=%s ignored)", config.latent_encoder)
    size = config.rgb_latent_resolution
    return RgbLatentEncoder((size, size) if size else None)
