"""Face frames from a trial's video, aligned to the 4 s segments of its signals.

Pipeline for one video file:

1. decode every frame in order and keep one every ``frame_step`` frames (frame ``i`` has the
   timestamp ``i / fps``; 40 at DEAP's 50 fps gives one frame every 0.8 s, as in CDGKD);
2. find the face in each kept frame, crop a square around it (enlarged by ``margin``), fall back
   to a centre square crop when no face is found (counted), and resize to ``face_size``;
3. give each segment window ``[start, end)`` (seconds of video time) exactly
   ``frames_per_segment`` frames: the kept frames whose timestamps fall in the window, thinned
   evenly when there are more, padded by repeating the last when there are fewer, and, when the
   window holds no kept frame at all (a video shorter than the signals), the nearest kept frame
   before it (counted).

Face detectors (``face_detector``):

- ``"haar"``: OpenCV's bundled frontal-face Haar cascade
  (``cv2.data.haarcascades + 'haarcascade_frontalface_default.xml'``). OpenCV 5 dropped
  ``cv2.CascadeClassifier`` and the cascade files from its main package, so this is available
  only with OpenCV 4.x;
- ``"yunet"``: ``cv2.FaceDetectorYN`` with an ONNX model file given as ``face_detector_model``
  (nothing is downloaded);
- ``"skin"``: a dependency-free detector: the largest face-shaped connected region of skin
  colour in YCrCb space (Cr 133-173, Cb 77-127; Chai & Ngan 1999). Adequate for one frontal,
  evenly lit face per frame, as in the DEAP and MAHNOB-HCI recordings;
- ``"none"``: centre crop only;
- ``"auto"`` (default): ``"haar"`` when this OpenCV has it, else ``"yunet"`` when a model file is
  given, else ``"skin"``.

Frames are returned as RGB, channel-first: ``(n_windows, F, 3, H, W)`` uint8.
"""
from __future__ import annotations

import bisect
import contextlib
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from cmkd.errors import ConfigError, DataError
from cmkd.params import defaults_of, params_from_literals

log = logging.getLogger("cmkd.data")

DETECTORS = ("auto", "haar", "yunet", "skin", "none")
HAAR_FILE = "haarcascade_frontalface_default.xml"

# parameters shared by the loaders that read face video (declared as cmkd.params.Param literals)
FACE_PARAMS = params_from_literals({
    "frame_step": {"default": 40, "kind": "int", "lo": 1, "doc": "keep every frame_step-th video frame"},
    "frames_per_segment": {"default": 5, "kind": "int", "lo": 1, "doc": "face frames per segment"},
    "face_size": {"default": 224, "kind": "int", "lo": 1, "doc": "side of the square face crop (pixels)"},
    "face_margin": {"default": 0.2, "lo": 0, "hi": 2, "doc": "margin around the detected face (share of its size)"},
    "face_detector": {"default": "auto", "kind": "choice", "choices": list(DETECTORS), "doc": "face detector"},
    "face_detector_model": {"default": None, "kind": "str", "nullable": True,
                            "doc": "file of the YuNet detector model (default: the bundled search path)"},
}, "face video")
FACE_DEFAULTS = defaults_of(FACE_PARAMS)


def _cv2():
    try:
        import cv2  # lazy: optional; imported lazily: only face preparation needs OpenCV
    except ImportError as e:  # pragma: no cover - OpenCV is a pinned dependency
        raise ConfigError(f"face frames need OpenCV (opencv-python-headless): {e}") from None
    return cv2


def haar_available() -> bool:
    cv2 = _cv2()
    data = getattr(cv2, "data", None)
    path = os.path.join(getattr(data, "haarcascades", "") or "", HAAR_FILE)
    return hasattr(cv2, "CascadeClassifier") and os.path.isfile(path)


def check_face_params(p: dict, where: str) -> None:
    """Validate the face parameters in ``p`` (raises :class:`ConfigError`)."""
    for key in ("frame_step", "frames_per_segment", "face_size"):
        v = p[key]
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise ConfigError(f"{where}: {key} must be a positive integer, got {v!r}")
    if not isinstance(p["face_margin"], (int, float)) or not 0 <= p["face_margin"] <= 2:
        raise ConfigError(f"{where}: face_margin must be a number in [0, 2], got {p['face_margin']!r}")
    if p["face_detector"] not in DETECTORS:
        raise ConfigError(f"{where}: face_detector must be one of {list(DETECTORS)}, got {p['face_detector']!r}")


def face_meta(cropper: "FaceCropper", p: Mapping[str, Any], alignment: str, stats: "FaceStats", **extra) -> dict:
    """The ``face`` entry of meta.json: detector, sampling, crop, alignment and face counts."""
    return {
        "detector": cropper.description,
        "frame_step": p["frame_step"], "frames_per_segment": p["frames_per_segment"],
        "size": p["face_size"], "margin": p["face_margin"], "layout": "(N, F, 3, H, W) RGB uint8",
        "alignment": alignment,
        **extra,
        **stats.as_dict(),
    }


@dataclass
class FaceStats:
    """Counts over the videos of one preparation, stored in meta.json under ``face``."""

    videos: int = 0
    frames_sampled: int = 0
    frames_face_found: int = 0
    frames_centre_crop: int = 0
    segments: int = 0
    segments_padded: int = 0
    segments_without_frame: int = 0

    def add(self, other: "FaceStats") -> None:
        for k in self.__dataclass_fields__:
            setattr(self, k, getattr(self, k) + getattr(other, k))

    def as_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def cropper_for(p: Mapping[str, Any], want_face: bool) -> "FaceCropper | None":
    """The :class:`FaceCropper` the face parameters of ``p`` describe, or None without face frames."""
    return FaceCropper(p["face_size"], p["face_margin"], p["face_detector"], p["face_detector_model"]) \
        if want_face else None


class FaceCropper:
    """Detect the face in a BGR frame, crop a square around it and resize to ``size``."""

    def __init__(self, size: int = 224, margin: float = 0.2, detector: str = "auto",
                 model_path: str | os.PathLike | None = None):
        cv2 = _cv2()
        self.cv2 = cv2
        self.size = int(size)
        self.margin = float(margin)
        if detector not in DETECTORS:
            raise ConfigError(f"face_detector must be one of {list(DETECTORS)}, got {detector!r}")
        if detector == "auto":
            detector = "haar" if haar_available() else ("yunet" if model_path else "skin")
        self.detector = detector
        self._detect: Callable[[np.ndarray], tuple[int, int, int, int] | None]
        if detector == "haar":
            if not haar_available():
                raise ConfigError(
                    f"face_detector 'haar' needs cv2.CascadeClassifier and {HAAR_FILE}, which OpenCV "
                    f"{cv2.__version__} does not ship; use 'skin', 'yunet' (with face_detector_model) or 'auto'")
            cascade = cv2.CascadeClassifier(os.path.join(cv2.data.haarcascades, HAAR_FILE))
            if cascade.empty():
                raise ConfigError(f"cannot load the Haar cascade {HAAR_FILE} from {cv2.data.haarcascades}")
            self._cascade = cascade
            self._detect = self._detect_haar
        elif detector == "yunet":
            if not model_path or not Path(model_path).is_file():
                raise ConfigError(f"face_detector 'yunet' needs face_detector_model, an existing ONNX file; got {model_path!r}")
            if not hasattr(cv2, "FaceDetectorYN"):
                raise ConfigError(f"OpenCV {cv2.__version__} has no FaceDetectorYN")
            self._yunet = cv2.FaceDetectorYN.create(str(model_path), "", (320, 320), 0.6, 0.3, 1)
            self._detect = self._detect_yunet
        elif detector == "skin":
            self._detect = self._detect_skin
        else:
            self._detect = lambda img: None

    @property
    def description(self) -> str:
        return {"haar": f"OpenCV Haar cascade {HAAR_FILE}", "yunet": "OpenCV FaceDetectorYN",
                "skin": "skin-colour region (YCrCb)", "none": "none (centre crop)"}[self.detector]

    # -- detectors: each returns (x, y, w, h) of the face in full-frame pixels, or None -----------
    def _small(self, img: np.ndarray, max_side: int = 320) -> tuple[np.ndarray, float]:
        h, w = img.shape[:2]
        s = min(1.0, max_side / max(h, w))
        if s < 1.0:
            img = self.cv2.resize(img, (max(1, round(w * s)), max(1, round(h * s))), interpolation=self.cv2.INTER_AREA)
        return img, s

    def _detect_haar(self, img):
        cv2 = self.cv2
        small, s = self._small(img)
        gray = cv2.equalizeHist(cv2.cvtColor(small, cv2.COLOR_BGR2GRAY))
        m = max(16, min(gray.shape) // 8)
        faces = self._cascade.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=5, minSize=(m, m))
        if len(faces) == 0:
            return None
        x, y, w, h = max(faces, key=lambda f: f[2] * f[3])
        return tuple(int(round(v / s)) for v in (x, y, w, h))

    def _detect_yunet(self, img):
        small, s = self._small(img)
        self._yunet.setInputSize((small.shape[1], small.shape[0]))
        _, faces = self._yunet.detect(small)
        if faces is None or len(faces) == 0:
            return None
        x, y, w, h = max(faces, key=lambda f: f[2] * f[3])[:4]
        return tuple(int(round(v / s)) for v in (x, y, w, h))

    def _detect_skin(self, img):
        cv2 = self.cv2
        small, s = self._small(img)
        ycrcb = cv2.cvtColor(small, cv2.COLOR_BGR2YCrCb)
        mask = cv2.inRange(ycrcb, (0, 133, 77), (255, 173, 127))
        k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
        mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, k)
        mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, k)
        n, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
        min_area = 0.01 * mask.shape[0] * mask.shape[1]
        best = None
        for i in range(1, n):
            x, y, w, h, area = (int(v) for v in stats[i])
            if area < min_area or w < 8:
                continue
            # a face (possibly with the neck below it) is taller than wide and fills its box
            if not 0.7 <= h / w <= 3.0 or area < 0.4 * w * h:
                continue
            if best is None or area > best[4]:
                best = (x, y, w, h, area)
        if best is None:
            return None
        x, y, w, h, _ = best
        h = min(h, int(round(1.3 * w)))  # drop the neck: a face is about 1.3 widths tall
        return tuple(int(round(v / s)) for v in (x, y, w, h))

    # -- cropping -------------------------------------------------------------------------------
    def __call__(self, bgr: np.ndarray) -> tuple[np.ndarray, bool]:
        """Return the (3, size, size) RGB uint8 crop and whether a face was found."""
        cv2 = self.cv2
        H, W = bgr.shape[:2]
        box = self._detect(bgr)
        if box is not None:
            x, y, w, h = box
            side = int(round(max(w, h) * (1.0 + self.margin)))
            cx, cy = x + w / 2.0, y + h / 2.0
        else:
            side = min(H, W)
            cx, cy = W / 2.0, H / 2.0
        side = max(1, min(side, H, W))
        x0 = int(round(cx - side / 2.0))
        y0 = int(round(cy - side / 2.0))
        x0 = min(max(0, x0), W - side)
        y0 = min(max(0, y0), H - side)
        crop = bgr[y0:y0 + side, x0:x0 + side]
        interp = cv2.INTER_AREA if side > self.size else cv2.INTER_LINEAR
        crop = cv2.resize(crop, (self.size, self.size), interpolation=interp)
        rgb = cv2.cvtColor(crop, cv2.COLOR_BGR2RGB)
        return np.ascontiguousarray(rgb.transpose(2, 0, 1)), box is not None


@dataclass
class SampledVideo:
    """The kept frames of one video: timestamps (s), crops (k, 3, H, W), and the video length."""

    path: Path
    fps: float
    n_frames: int
    times: np.ndarray
    crops: np.ndarray
    stats: FaceStats = field(default_factory=FaceStats)

    @property
    def duration(self) -> float:
        return self.n_frames / self.fps


@contextlib.contextmanager
def _capture(cv2, path: Path):
    """``(capture, frame rate)`` of an opened video, released on exit; :class:`DataError` naming
    the file when it is missing, cannot be opened or reports no frame rate."""
    if not path.is_file():
        raise DataError(f"{path}: video file not found")
    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            raise DataError(f"{path}: cannot open video (corrupt file or unsupported codec)")
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        if not np.isfinite(fps) or fps <= 0:
            raise DataError(f"{path}: video reports no frame rate")
        yield cap, fps
    finally:
        cap.release()


def video_info(path: str | os.PathLike) -> tuple[float, int]:
    """(frame rate, frame count) from the container header, without decoding (fast; the count is
    the header's, which decoding confirms). Raises :class:`DataError` naming the file."""
    cv2 = _cv2()
    with _capture(cv2, Path(path)) as (cap, fps):
        n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
    return fps, n


def sample_video(path: str | os.PathLike, cropper: FaceCropper, frame_step: int = 40,
                 t_range: tuple[float, float] | None = None) -> SampledVideo:
    """Decode ``path`` and crop one frame every ``frame_step`` frames.

    With ``t_range = (t0, t1)`` only kept frames with ``t0 <= t < t1`` are cropped (the others
    are still decoded, as codecs need). Raises :class:`DataError` naming the file when it
    cannot be opened, has no frame rate, or yields no frame.
    """
    path = Path(path)
    with _capture(cropper.cv2, path) as (cap, fps):
        stats = FaceStats(videos=1)
        times: list[float] = []
        crops: list[np.ndarray] = []
        i = 0
        while True:
            keep = i % frame_step == 0
            t = i / fps
            if t_range is not None and t >= t_range[1]:
                break
            if keep and (t_range is None or t >= t_range[0]):
                ok, frame = cap.read()
                if not ok:
                    break
                crop, found = cropper(frame)
                crops.append(crop)
                times.append(t)
                stats.frames_sampled += 1
                stats.frames_face_found += int(found)
                stats.frames_centre_crop += int(not found)
            elif not cap.grab():
                break
            i += 1
        n_frames = i
    if n_frames == 0:
        raise DataError(f"{path}: no frame could be decoded")
    size = cropper.size
    arr = np.stack(crops) if crops else np.zeros((0, 3, size, size), np.uint8)
    return SampledVideo(path=path, fps=fps, n_frames=n_frames, times=np.asarray(times, float), crops=arr, stats=stats)


def frames_for_windows(video: SampledVideo, windows: Sequence[tuple[float, float]],
                       frames_per_segment: int) -> tuple[np.ndarray, FaceStats]:
    """Give each window exactly ``frames_per_segment`` of the video's kept frames.

    Returns ``(len(windows), F, 3, H, W)`` uint8 and the counts (padded windows, windows
    without a kept frame). Raises :class:`DataError` when the video has no kept frame at all.
    """
    F = int(frames_per_segment)
    if len(video.times) == 0:
        raise DataError(f"{video.path}: no frame of the video falls in the segment windows "
                        f"(video {video.duration:.2f} s, windows {windows[0][0]:.2f}-{windows[-1][1]:.2f} s)")
    stats = FaceStats(segments=len(windows))
    times = list(video.times)
    out = np.empty((len(windows), F) + video.crops.shape[1:], np.uint8)
    for w, (start, end) in enumerate(windows):
        lo = bisect.bisect_left(times, start - 1e-9)
        hi = bisect.bisect_left(times, end - 1e-9)
        idx = list(range(lo, hi))
        if not idx:
            stats.segments_without_frame += 1
            idx = [max(0, lo - 1)]  # nearest kept frame before the window (or the first one)
        if len(idx) >= F:
            pick = [idx[int(round(j))] for j in np.linspace(0, len(idx) - 1, F)]
        else:
            stats.segments_padded += 1
            pick = idx + [idx[-1]] * (F - len(idx))
        out[w] = video.crops[pick]
    return out, stats


def face_frames(video: SampledVideo, windows: Sequence[tuple[float, float]], frames_per_segment: int,
                totals: FaceStats) -> np.ndarray:
    """:func:`frames_for_windows` of ``video``; its counts and the video's sampling counts are
    added to ``totals``."""
    frames, st = frames_for_windows(video, windows, frames_per_segment)
    st.add(video.stats)
    totals.add(st)
    return frames
