"""arc2avatar: one photo in, an expressive 3D Gaussian-splat head avatar out.

Implements Arc2Avatar (Gerogiannis et al., CVPR 2025). The packages, in the direction data flows:
``identity`` (photo -> ArcFace embedding), ``prior`` (Arc2Face guidance), ``head`` (templates),
``splats`` (bound Gaussians and their renderer), ``cameras`` and ``pipeline`` (the optimisation
and its outputs). Heavy pieces are imported lazily so ``import arc2avatar`` is cheap.
"""

__version__ = "0.1.0"
