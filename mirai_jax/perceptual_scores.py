"""LPIPS per frame and FVD per method, for evaluate and its rollouts.

They need the `metrics` extra (lpips_fvd.py: the networks' weights come
inside two registry packages); without it, or where a metric cannot be
computed (frames under 32 px for LPIPS, windows under 9 frames for FVD), the
result JSON says why in `metrics_note` / `fvd_note` and the table says how to
get them. LPIPS is scored on the generated frames (a widening: on the whole
widened frame, the sides alone being too narrow for AlexNet). FVD compares
I3D features of whole windows (given frames included, as the video
prediction literature does) of at most `evaluate.fvd_clips` clips: the true
windows against each method's.
"""

from __future__ import annotations

import numpy as np

from mirai_jax import lpips_fvd


class Plan:
  """What one evaluation computes beyond PSNR/SSIM/MSE, and its running
  I3D features."""

  def __init__(self, ev, spec: dict, frames: int, task: str = 'continue'):
    ok = lpips_fvd.available()
    small = min(spec['height'], spec['width']) < lpips_fvd.MIN_LPIPS_SIZE
    self.lpips = bool(ev.get('lpips', True)) and ok and not small
    self.limit = int(ev.get('fvd_clips', 0))
    self.fvd = ok and self.limit > 0 and frames >= lpips_fvd.MIN_FVD_FRAMES
    self.frames = frames
    self.task = task
    self.notes = {}
    if not ok:
      self.notes['metrics_note'] = f'LPIPS and FVD: {lpips_fvd.HOW}'
    else:
      if small:
        self.notes['metrics_note'] = (
            f"no LPIPS: frames of {spec['height']}x{spec['width']} are under "
            f'the {lpips_fvd.MIN_LPIPS_SIZE} px AlexNet needs')
      if self.limit and frames < lpips_fvd.MIN_FVD_FRAMES:
        self.notes['fvd_note'] = (
            f'no FVD: windows of {frames} frames are under the '
            f'{lpips_fvd.MIN_FVD_FRAMES} I3D needs (the rollout has one when '
            'its horizon is long enough)')
    self._real, self._fake = [], {}
    self._take = 0  # clips of the current batch that join the FVD sets

  def add_real(self, real: np.ndarray) -> None:
    """The true whole windows (m, T, H, W, 3) in [0, 1] of the next batch."""
    if not self.fvd:
      return
    taken = sum(len(f) for f in self._real)
    self._take = max(0, min(len(real), self.limit - taken))
    if self._take:
      self._real.append(lpips_fvd.i3d_features(real[:self._take]))

  def lpips_scores(self, real: np.ndarray, fake: np.ndarray,
                   scored: np.ndarray) -> dict[str, np.ndarray]:
    """{'lpips': (m, len(scored))} of whole windows (m, T, H, W, 3) in
    [0, 1] at the frames `scored`; {} without LPIPS."""
    if not self.lpips:
      return {}
    r, f = real[:, scored], np.clip(fake[:, scored], 0.0, 1.0)
    m, t = r.shape[:2]
    return dict(lpips=lpips_fvd.lpips(r.reshape(m * t, *r.shape[2:]),
                                      f.reshape(m * t, *f.shape[2:])
                                      ).reshape(m, t))

  def add_fake(self, method: str, fake: np.ndarray) -> None:
    """One method's whole windows of the clips last given to add_real."""
    if self.fvd and self._take:
      self._fake.setdefault(method, []).append(
          lpips_fvd.i3d_features(np.clip(fake[:self._take], 0.0, 1.0)))

  def finish(self, result: dict) -> None:
    """Adds each method's FVD and the notes to an evaluate result."""
    result.update(self.notes)
    if self.lpips and self.task == 'outpaint':
      result['lpips_region'] = 'whole frame'
    if not self.fvd or not self._real:
      return
    real = np.concatenate(self._real)
    if len(real) < 2:
      result['fvd_note'] = 'no FVD: it needs at least 2 clips'
      return
    for k, feats in self._fake.items():
      if k in result['methods']:
        result['methods'][k]['fvd'] = lpips_fvd.frechet_distance(
            real, np.concatenate(feats))
    result['fvd_clips'] = int(len(real))
    result['fvd_frames'] = int(self.frames)
