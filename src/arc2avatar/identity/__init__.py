"""Identity: photo(s) -> one unit 512-d ArcFace embedding (docs/method.md §1).

``load_image`` (decode) -> ``ScrfdDetector`` (faces + 5 keypoints) -> ``align_face`` (112² crop on
the ArcFace template) -> ``ArcFaceEmbedder`` (raw 512-d) -> ``embed_photos`` (normalise, mean,
normalise). ``synthetic`` writes tiny ONNX stand-ins in the real layout for tests.
"""

from arc2avatar.identity.align import ARCFACE_TEMPLATE_112, align_face, estimate_similarity
from arc2avatar.identity.arcface import ArcFaceConfig, ArcFaceEmbedder
from arc2avatar.identity.detect import Face, ScrfdConfig, ScrfdDetector, largest_face
from arc2avatar.identity.embed import IdentityEmbedding, PhotoFaces, embed_photos
from arc2avatar.identity.image import ImageLimits, load_image

__all__ = [
    "ARCFACE_TEMPLATE_112", "ArcFaceConfig", "ArcFaceEmbedder", "Face", "IdentityEmbedding",
    "ImageLimits", "PhotoFaces", "ScrfdConfig", "ScrfdDetector", "align_face",
    "embed_photos", "estimate_similarity", "largest_face", "load_image",
]
