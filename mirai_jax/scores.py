"""Scores of generated frames against the true ones, per clip and frame.

Pixels in [0, 1], arrays (B, T, H, W, 3) -> (B, T). evaluate reports their
means over clips, and per frame position.
"""

from __future__ import annotations

import dm_pix as pix
import jax.numpy as jnp
import numpy as np


def frame_scores(real: np.ndarray, fake: np.ndarray) -> dict[str, np.ndarray]:
  """PSNR, SSIM and MSE of each frame (dm-pix)."""
  b, t = real.shape[:2]
  flat = lambda v: jnp.asarray(v).reshape(b * t, *v.shape[2:])
  mse = np.asarray(pix.mse(flat(real), flat(fake))).reshape(b, t)
  return dict(
      # Held drawings make copies exact: PSNR is capped at 60 dB (MSE 1e-6)
      # so that one identical frame does not turn a mean into infinity.
      psnr=10 * np.log10(1.0 / np.maximum(mse, 1e-6)),
      ssim=np.asarray(pix.ssim(flat(real), flat(fake))).reshape(b, t),
      mse=mse)


def box_mse(real: np.ndarray, fake: np.ndarray, boxes: np.ndarray
            ) -> np.ndarray:
  """MSE inside each frame's box [x0, y0, x1, y1); boxes (B, T, 4)."""
  out = np.zeros(real.shape[:2])
  for i, j in np.ndindex(*out.shape):
    x0, y0, x1, y1 = boxes[i, j]
    out[i, j] = np.mean((real[i, j, y0:y1, x0:x1] - fake[i, j, y0:y1, x0:x1]) ** 2)
  return out
