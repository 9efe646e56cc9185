"""Face-video encoder: a timm image backbone applied to every frame, averaged over frames.

Input ``(B, F, 3, H, W)``: uint8 pixels (0-255) or floats already in [0, 1]. Each frame is scaled
to [0, 1], normalised with the ImageNet mean and std, resized (bilinear) to ``img_size`` when it
differs, and passed through the backbone built with ``num_classes=0``, whose pooled output is the
per-frame feature; ``feat`` is its mean over the F frames, ``(B, D)``. The ``hint`` is the
backbone's last feature map (``forward_features``) averaged over frames -- or, with ``hint_stage``
= k, the output of stage/block k of timm's ``forward_intermediates`` (a middle layer, as FitNets'
hint; negative k counts from the end) -- always channels first:
``(B, C, h, w)`` for convolutional and pyramid models (NHWC outputs are permuted), and for
ViT-like token outputs ``(B, D, h, w)`` when the patch tokens form a known grid (prefix tokens
such as the class token dropped), else ``(B, D, N)``.

The fine-tuned paper size is ``pvt_v2_b0`` (3.4 M parameters) at 224 px; the fast default is timm's
``test_vit`` (0.3 M parameters) at the data's own size. With ``frozen: true`` this class only
extracts: the training job runs it once per frame in eval mode without gradients and caches the
pooled features (:mod:`cmkd.run.frame_features`; the paper grid: ``pvt_v2_b2``), and the network
holds a small head on them instead (:class:`cmkd.models.visual_frozen.FrozenFeatureHead`).

Weights (CDGKD §4.3 extracts visual features with PVT; its authors' code feeds ImageNet-pretrained
PVT features), as timm users expect them:

- ``pretrained: true``: timm's own ``create_model(arch, pretrained=True)``, i.e. the ImageNet
  weights of the architecture's default tag from the Hugging Face hub cache (``HF_HOME``; a
  cluster without network access fills the cache beforehand, e.g. ``timm.create_model(arch,
  pretrained=True)`` once on a login node, then ``HF_HUB_OFFLINE=1``);
- ``pretrained_path``: a local weights file (``.pth``/``.bin`` or ``.safetensors``, a state dict
  with or without the classifier), loaded by timm's same loader (``pretrained_cfg_overlay``)
  with its usual checkpoint adaptation (classifier removed, position embeddings resampled to
  ``img_size``) and strict key matching;
- neither: random initialisation. The config check refuses it on real data unless the encoder
  says ``allow_random_init: true`` (:func:`cmkd.config.check_config`); synthetic data need no
  weights.

With loaded weights the frames are normalised with the weights' own mean and std (timm's
``pretrained_cfg``), else with the ImageNet mean and std. :attr:`TimmFrameEncoder.weights`
records where the weights came from, the file's sha256 (``file_sha256``; for the hub cache the
cached file's, when found) and the sha256 of the loaded parameters (``state_sha256``, over the
sorted state dict); the training loop writes it to ``metrics.json`` (``provenance.weights``).

timm is imported only when an encoder is built (importing torch + timm takes seconds), after
:func:`cmkd.models._torchvision_shim.ensure_timm_importable`.
"""
from __future__ import annotations

import hashlib

import torch
import torch.nn.functional as F
from torch import nn

from cmkd.models._torchvision_shim import ensure_timm_importable
from cmkd.models.visual_frozen import FrozenFeatureHead

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
PAPER_ARCH = "pvt_v2_b0"
DEFAULT_ARCH = "test_vit"


def import_timm():
    """Import timm (through the torchvision shim) and return the module."""
    ensure_timm_importable()
    import timm  # lazy: optional (timm, only for face encoders)

    return timm


def file_sha256(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def state_sha256(module: nn.Module) -> str:
    """sha256 over the module's state dict (sorted names; each tensor's name, dtype, shape, bytes)."""
    h = hashlib.sha256()
    for name, t in sorted(module.state_dict().items()):
        t = t.detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def _hub_cache_file(backbone) -> str | None:
    """The hub-cache file timm loaded ``pretrained=True`` weights from, when it can be found."""
    cfg = getattr(backbone, "pretrained_cfg", None) or {}
    repo = cfg.get("hf_hub_id")
    if not repo:
        return None
    try:
        from huggingface_hub import try_to_load_from_cache  # lazy: optional (huggingface_hub, only to locate cached weights)
    except ImportError:
        return None
    for name in (cfg.get("hf_hub_filename"), "model.safetensors", "pytorch_model.bin"):
        if name:
            f = try_to_load_from_cache(repo, name)
            if isinstance(f, str):
                return f
    return None


def create_backbone(arch: str, img_size: tuple[int, int], pretrained_path: str | None = None,
                    pretrained: bool = False):
    """A timm model with ``num_classes=0``; ``img_size`` is passed to models that take one.
    ``pretrained_path`` (a local file) or ``pretrained`` (timm's hub cache) loads weights."""
    timm = import_timm()
    kwargs = dict(num_classes=0)
    if pretrained_path:
        kwargs.update(pretrained=True, pretrained_cfg_overlay=dict(file=str(pretrained_path)))
    else:
        kwargs.update(pretrained=bool(pretrained))
    try:
        return timm.create_model(arch, img_size=img_size, **kwargs)
    except TypeError as err:  # the architecture has no img_size argument (CNNs, PVT v2)
        if "img_size" not in str(err):
            raise
        return timm.create_model(arch, **kwargs)


class TimmFrameEncoder(nn.Module):
    """A timm backbone over the frames of a clip; input (B, F, 3, H, W), output ``(feat, hint)``."""

    def __init__(self, arch: str = DEFAULT_ARCH, img_size: int | tuple[int, int] = 32,
                 pretrained_path: str | None = None, hint_stage: int | None = None, pretrained: bool = False):
        super().__init__()
        self.hint_stage = hint_stage
        if isinstance(img_size, int):
            img_size = (img_size, img_size)
        self.arch = arch
        self.img_size = tuple(int(s) for s in img_size)
        self.backbone = create_backbone(arch, self.img_size, pretrained_path, pretrained)
        self.out_dim = int(getattr(self.backbone, "head_hidden_size", None)
                           or self.backbone.num_features)
        loaded = bool(pretrained_path or pretrained)
        cfg = getattr(self.backbone, "pretrained_cfg", None) or {}
        mean, std = (cfg.get("mean", IMAGENET_MEAN), cfg.get("std", IMAGENET_STD)) if loaded else (IMAGENET_MEAN, IMAGENET_STD)
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        source_file = pretrained_path or (_hub_cache_file(self.backbone) if pretrained else None)
        #: provenance of the initial weights (written to metrics.json by the training loop)
        self.weights = {
            "source": "file" if pretrained_path else ("timm" if pretrained else "random"),
            "arch": arch,
            "tag": cfg.get("tag") if pretrained and not pretrained_path else None,
            "file": str(source_file) if source_file else None,
            "file_sha256": file_sha256(source_file) if source_file else None,
            "state_sha256": state_sha256(self.backbone) if loaded else None,
            "normalisation": {"mean": [float(v) for v in mean], "std": [float(v) for v in std]},
        }
        self._check_input_size()

    def _check_input_size(self) -> None:
        """Fail at build time, naming the size, when the backbone cannot take ``img_size`` frames
        (the config check refuses before the DAG the sizes cmkd.models.visual_sizes declares for
        an architecture; this is the check of any other)."""
        was_training = self.backbone.training
        self.backbone.eval()
        try:
            with torch.no_grad():
                self._features(torch.zeros(1, 3, *self.img_size))
        except (RuntimeError, NotImplementedError, AttributeError, IndexError, AssertionError) as e:
            if self.hint_stage is not None and not isinstance(e, RuntimeError):
                raise ValueError(f"hint_stage {self.hint_stage}: timm model '{self.arch}' has no such "
                                 f"intermediate output ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})") from None
            raise ValueError(f"timm model '{self.arch}' cannot take {self.img_size[0]}x{self.img_size[1]} px frames "
                             f"({str(e).splitlines()[0]}); use a larger img_size or face_size") from None
        finally:
            self.backbone.train(was_training)

    def _prepare(self, frames: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) uint8 or [0, 1] float -> normalised float at ``img_size``."""
        x = frames.float()
        if frames.dtype == torch.uint8:
            x = x / 255.0
        x = (x - self.mean) / self.std
        if tuple(x.shape[-2:]) != self.img_size:
            x = F.interpolate(x, size=self.img_size, mode="bilinear", align_corners=False)
        return x

    def _channels_first(self, fmap: torch.Tensor) -> torch.Tensor:
        if fmap.dim() == 4:
            if getattr(self.backbone, "output_fmt", "NCHW") == "NHWC":
                fmap = fmap.permute(0, 3, 1, 2)
            return fmap
        if fmap.dim() == 3:  # tokens (N, L, D)
            fmap = fmap[:, int(getattr(self.backbone, "num_prefix_tokens", 0)):]
            grid = getattr(getattr(self.backbone, "patch_embed", None), "grid_size", None)
            n, length, dim = fmap.shape
            fmap = fmap.transpose(1, 2)
            if grid is not None and len(grid) == 2 and grid[0] * grid[1] == length:
                fmap = fmap.reshape(n, dim, int(grid[0]), int(grid[1]))
            return fmap
        return fmap

    def frames(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(per-frame pooled features (B, F, D), hint)``: one pass of the backbone over every frame."""
        if x.dim() != 5:
            raise ValueError(f"expected face clips (B, F, 3, H, W), got shape {tuple(x.shape)}")
        b, f = x.shape[:2]
        frames = self._prepare(x.reshape(b * f, *x.shape[2:]))
        fmap, hint_map = self._features(frames)
        pooled = self.backbone.forward_head(fmap)  # num_classes=0: pooled pre-logits
        hint = self._channels_first(hint_map)
        return pooled.reshape(b, f, -1), hint.reshape(b, f, *hint.shape[1:]).mean(dim=1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        per_frame, hint = self.frames(x)
        return per_frame.mean(dim=1), hint

    def _features(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(last feature map, hint map): one pass through the backbone."""
        if self.hint_stage is None:
            fmap = self.backbone.forward_features(frames)
            return fmap, fmap
        fmap, inter = self.backbone.forward_intermediates(frames, indices=[self.hint_stage])
        return fmap, inter[0]


def weights_provenance(model: nn.Module) -> dict:
    """``{module name: weights}`` for every frame encoder in ``model``: a fine-tuned
    :class:`TimmFrameEncoder`'s initial weights, or the frozen features' provenance of a
    :class:`cmkd.models.visual_frozen.FrozenFeatureHead` (``frozen: true``, with the cache key)."""
    return {name or "model": dict(m.weights) for name, m in model.named_modules()
            if isinstance(m, (TimmFrameEncoder, FrozenFeatureHead))}


def without_pretrained(spec):
    """A copy of a model spec whose timm encoders load no weights (a checkpoint's state dict
    replaces them anyway): for rebuilding a trained teacher without the weights file or network."""
    if isinstance(spec, dict):
        out = {k: without_pretrained(v) for k, v in spec.items()}
        if out.get("name") == "timm":
            out.update(pretrained=False, pretrained_path=None, allow_random_init=True)
        return out
    if isinstance(spec, list):
        return [without_pretrained(v) for v in spec]
    return spec
