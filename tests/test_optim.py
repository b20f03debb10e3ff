"""The learning-rate schedules of train/optim.py."""

import ml_collections
import numpy as np
import pytest

from mirai_jax.train import optim


def _cfg(**kw):
  return ml_collections.ConfigDict({**dict(
      lr=1e-3, final_lr_ratio=0.1, warmup_steps=10, steps=110,
      schedule='wsd', decay_fraction=0.2), **kw})


def test_wsd_warms_up_holds_then_decays_linearly_over_the_last_fraction():
  lr = optim.schedule(_cfg())
  at = lambda step: float(lr(step))
  assert at(0) == 0.0
  assert at(5) == pytest.approx(5e-4)
  # Held from the warmup's end to 80 % of the 110 steps (88).
  for step in (10, 50, 88):
    assert at(step) == pytest.approx(1e-3)
  assert at(99) == pytest.approx(1e-3 - 0.5 * 9e-4)  # half-way down
  assert at(110) == pytest.approx(1e-4)
  assert at(500) == pytest.approx(1e-4)  # past the steps: stays at the end
  steps = np.arange(10, 111)
  assert np.all(np.diff([at(s) for s in steps]) <= 1e-12)


def test_wsd_without_warmup_or_hold():
  no_warmup = optim.schedule(_cfg(warmup_steps=0))  # not the warmup's 0 lr
  assert float(no_warmup(0)) == pytest.approx(1e-3)
  whole = optim.schedule(_cfg(decay_fraction=1.0))
  assert float(whole(10)) == pytest.approx(1e-3)
  assert float(whole(60)) == pytest.approx(5.5e-4)


def test_cosine_stays_the_default():
  cfg = _cfg()
  del cfg.schedule  # configs written before the field
  cosine = optim.schedule(cfg)
  assert float(cosine(10)) == pytest.approx(1e-3)
  # A cosine is already below the peak where wsd still holds it.
  assert float(cosine(60)) == pytest.approx(1e-4 + 0.5 * 9e-4)
  assert float(cosine(110)) == pytest.approx(1e-4)
