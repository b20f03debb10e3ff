"""Metrics: a JSON-lines file and TensorBoard events in the workdir, and a
progress line with step rate and ETA. Only process 0 writes. Images and
clips (`video`: a strip, a row of frames per clip) go to TensorBoard only.

A workdir at a URL (gs://) gets local copies, uploaded every minute and at
the end: object stores cannot append to a file.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from typing import Any, Optional

import jax
import numpy as np

from mirai_jax import storage

UPLOAD_EVERY_S = 60


def _plain(v: Any):
  v = np.asarray(jax.device_get(v))
  return v.item() if v.size == 1 else v.tolist()


def strip(frames: np.ndarray) -> np.ndarray:
  """(T, H, W, C) or (N, T, H, W, C) -> (N * H, T * W, C): a row per clip,
  a column per frame."""
  f = np.asarray(frames)
  f = f[None] if f.ndim == 4 else f
  n, t, h, w, c = f.shape
  return f.transpose(0, 2, 1, 3, 4).reshape(n * h, t * w, c)


class Writer:

  def __init__(self, workdir: str, total_steps: Optional[int] = None,
               name: str = ''):
    self.enabled = jax.process_index() == 0
    self.total = total_steps
    self.name = name
    self._t0 = self._tlast = time.time()
    self._slast = None
    self._url = workdir if storage.is_url(workdir) else None
    self._uploaded = time.time()
    if self.enabled:
      local = workdir
      if self._url:
        local = tempfile.mkdtemp(prefix='mirai_jax-metrics-')
        fs, jsonl = storage.filesystem(f'{workdir}/metrics.jsonl')
        if fs.exists(jsonl):  # a resumed run: keep appending to its lines
          fs.get_file(jsonl, os.path.join(local, 'metrics.jsonl'))
      os.makedirs(local, exist_ok=True)
      self._local = local
      self._jsonl = open(os.path.join(local, 'metrics.jsonl'), 'a',
                         encoding='utf-8')
      from tensorboardX import SummaryWriter  # pylint: disable=g-import-not-at-top
      self._tb = SummaryWriter(os.path.join(local, 'tb'))

  def scalars(self, step: int, values: dict[str, Any]) -> dict[str, Any]:
    values = {k: _plain(v) for k, v in values.items()}
    if self.enabled:
      self._jsonl.write(json.dumps(dict(step=step, **values)) + '\n')
      self._jsonl.flush()
      for k, v in values.items():
        if isinstance(v, (int, float)):
          self._tb.add_scalar(k, v, step)
      if self._url and time.time() - self._uploaded > UPLOAD_EVERY_S:
        self._jsonl.flush()
        self._tb.flush()
        self._upload()
    return values

  def _upload(self) -> None:
    storage.upload(self._local, self._url, append_only=True)
    self._uploaded = time.time()

  def image(self, step: int, name: str, image: np.ndarray) -> None:
    """image: (H, W, 3) uint8."""
    if self.enabled:
      self._tb.add_image(name, np.asarray(image), step, dataformats='HWC')

  def video(self, step: int, name: str, frames: np.ndarray) -> None:
    """frames: uint8 (T, H, W, 3), or (N, T, H, W, 3) for N clips, shown as
    one image (`strip`). Not tensorboardX's add_video: it needs moviepy,
    which is no dependency, and a strip shows every frame at once, so rows
    compare frame by frame."""
    if self.enabled:
      self.image(step, name, strip(frames))

  def progress(self, step: int, values: dict[str, Any]) -> None:
    """One line: step, chosen values, steps/s since the last line, ETA."""
    now = time.time()
    rate = ((step - self._slast) / max(now - self._tlast, 1e-9)
            if self._slast is not None else 0.0)
    self._tlast, self._slast = now, step
    if not self.enabled:
      return
    parts = [f'{self.name} step {step}' + (f'/{self.total}' if self.total else '')]
    parts += [f'{k} {v:.4g}' for k, v in values.items()
              if isinstance(v, (int, float))]
    if rate:
      parts.append(f'{rate:.2f} steps/s')
      if self.total:
        eta = (self.total - step) / rate
        parts.append(f'ETA {int(eta // 60)}m{int(eta % 60):02d}s')
    print(' | '.join(parts), flush=True)

  def close(self) -> None:
    if self.enabled:
      self._jsonl.close()
      self._tb.close()
      if self._url:
        self._upload()
        shutil.rmtree(self._local, ignore_errors=True)
