"""TensorBoard pictures of the transformer stage: true vs predicted frames of
fixed validation clips at every validation (read back from a real run's
event file in test_main's demo test)."""

import numpy as np

from mirai_jax import defaults
from mirai_jax import workdir as workdir_lib
from mirai_jax.train import metrics
from mirai_jax.train import transformer as train_transformer


def test_strip_has_a_row_per_clip_and_a_column_per_frame():
  clips = np.zeros((2, 3, 4, 5, 3), np.uint8)
  clips[1, 2] = 255  # clip 1, frame 2
  s = metrics.strip(clips)
  assert s.shape == (2 * 4, 3 * 5, 3)
  assert (s[4:, 10:] == 255).all() and s[:4].max() == 0 and s[:, :10].max() == 0
  assert metrics.strip(clips[0]).shape == (4, 15, 3)


def test_summary_clips_0_turns_the_pictures_off():
  config = defaults.run()
  config.transformer.summary_clips = 0
  # Off before anything is read, loaded or compiled: no workdir, no model.
  assert train_transformer.prediction_summary(
      config, None, None, None, None, None,
      workdir_lib.make_mesh(config)) is None
