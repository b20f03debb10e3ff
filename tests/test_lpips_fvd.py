"""LPIPS and FVD (the `metrics` extra): reference values, identities, the
Frechet distance against a plain matrix square root."""

import os

import numpy as np
import pytest
from PIL import Image

from mirai_jax import lpips_fvd

pytestmark = pytest.mark.skipif(
    not lpips_fvd.available(), reason=f'no metrics extra: {lpips_fvd.HOW}')

DATA = os.path.join(os.path.dirname(__file__), 'data', 'lpips')


def _png(name):
  return np.asarray(Image.open(os.path.join(DATA, name)).convert('RGB'),
                    np.float32)[None] / 255.0


def test_lpips_matches_the_papers_example_patches():
  ref, p0, p1 = (_png(f'ex_{n}.png') for n in ('ref', 'p0', 'p1'))
  got = lpips_fvd.lpips(np.concatenate([ref, ref]), np.concatenate([p0, p1]))
  np.testing.assert_allclose(got, [0.722, 0.138], atol=0.0015)


def test_lpips_is_zero_for_equal_frames_symmetric_and_grows_with_noise():
  rng = np.random.default_rng(0)
  y, x = np.mgrid[0:64, 0:64] / 64.0
  smooth = np.stack([x, y, 0.5 * (x + y)], -1)[None].astype(np.float32)
  noisy = [np.clip(smooth + rng.normal(0, s, smooth.shape), 0, 1)
           for s in (0.05, 0.1, 0.2)]
  d = [float(lpips_fvd.lpips(smooth, n)[0]) for n in noisy]
  assert float(lpips_fvd.lpips(smooth, smooth)[0]) < 1e-6
  assert d[0] < d[1] < d[2]
  np.testing.assert_allclose(lpips_fvd.lpips(noisy[0], smooth), d[0], rtol=1e-5)
  with pytest.raises(ValueError, match='at least 32x32'):
    lpips_fvd.lpips(smooth[:, :16], smooth[:, :16])


def test_frechet_distance_equals_the_matrix_square_root_formula():
  scipy_linalg = pytest.importorskip('scipy.linalg')
  rng = np.random.default_rng(1)
  x = rng.normal(size=(60, 8)) @ rng.normal(size=(8, 8))
  y = rng.normal(0.5, 1.0, size=(50, 8)) @ rng.normal(size=(8, 8))
  sx, sy = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
  ref = (((x.mean(0) - y.mean(0)) ** 2).sum()
         + np.trace(sx + sy - 2 * np.real(scipy_linalg.sqrtm(sx @ sy))))
  np.testing.assert_allclose(lpips_fvd.frechet_distance(x, y), ref, rtol=1e-6)
  assert abs(lpips_fvd.frechet_distance(x, x)) < 1e-6


def test_fvd_features_of_clips():
  rng = np.random.default_rng(2)
  clips = rng.uniform(size=(2, 9, 32, 48, 3)).astype(np.float32)
  feats = lpips_fvd.i3d_features(clips)
  assert feats.shape == (2, 400) and np.isfinite(feats).all()
  assert np.abs(feats[0] - feats[1]).max() > 1e-3  # other clips, other features
  # Eval-mode batch norm: a clip's feature does not depend on the other
  # clips of its batch or its place there.
  np.testing.assert_allclose(lpips_fvd.i3d_features(clips[::-1], batch=2)[1],
                             feats[0], rtol=1e-4, atol=1e-4)
  # Two clips a side: a rank-1 covariance of 400-d features, whose root
  # leaves ~1e-3 of rounding; a shift of every feature by 1 adds 400.
  assert abs(lpips_fvd.frechet_distance(feats, feats)) < 1e-2
  assert lpips_fvd.frechet_distance(feats, feats + 1) == pytest.approx(
      400, abs=1e-2)
  with pytest.raises(ValueError, match='at least 9 frames'):
    lpips_fvd.i3d_features(clips[:, :8])
