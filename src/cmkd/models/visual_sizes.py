"""The frame sizes each timm architecture of the face encoder accepts, declared without torch so
that the config check (:func:`cmkd.feasibility.check_face_sizes`, which reads this file with
:mod:`ast`: importing ``cmkd.models`` would import torch) refuses a face size too small for the
configured ``arch`` before any job runs.

:data:`FRAME_SIZES` maps an architecture to ``(smallest, multiple)``: the square frame sides it
takes, as :class:`cmkd.models.visual.TimmFrameEncoder` builds it (``img_size`` passed to models
that take one), are ``smallest``, ``smallest + multiple``, ... . Measured by
``scripts/visual_min_sizes.py`` (one build and forward pass per size from 1 to 80 px) with the
installed timm; run it again after a timm upgrade or to add an architecture. An architecture not
listed here is checked inside the job, when the encoder is built (one line naming the size).
"""
from __future__ import annotations

#: arch -> (smallest side in pixels, multiple): accepted sides are smallest + k * multiple (a literal)
FRAME_SIZES: dict[str, tuple[int, int]] = {
    "test_vit": (16, 16),        # 16 px patches, no resampling of a partial patch
    "test_convnext3": (32, 1),   # total stride 32
    "pvt_v2_b0": (29, 1),        # the fine-tuned paper-size visual encoder
    "pvt_v2_b2": (29, 1),        # the paper grid's frozen feature extractor (encoders.face.frozen)
    "resnet18": (1, 1),          # padded convolutions and adaptive pooling take any size
    "resnet50": (1, 1),
    "convnext_tiny": (32, 1),
    "efficientnet_b0": (1, 1),
    "vit_tiny_patch16_224": (16, 1),  # position embeddings resampled to img_size; at least one patch
}

