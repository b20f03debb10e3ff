r"""How a trained model's tokens become frames, swept on the validation split.

  python bench/decode_sweep.py --config=configs/demo.py --workdir=/tmp/mirai_demo
      [--split=validation] [--task=continue] [--top_ks=0,2,4,8]
      [--thresholds=0,0.1,0.15,0.2,0.25,0.3]

For `sample.decode='tokens'` and for 'mean' at each `sample.mean_top_k` in
--top_ks (0 there = 'tokens'), every clip's first window is generated once
for --task (a continuation, or an in-between: evaluate's window), with the
clip's own sound and with another clip's, then pasted at each
`evaluate.paste_threshold` (paste 'residual'): one JSON line per setting
with the MSE over the generated frames and, on synthetic
episodes, the MSE in the mouth's box with both sounds; then a table. The
workdir holds a trained tokenizer and transformer (command 1 of the README).
Choose on the validation split, never on the test split. Figures: README,
"Sampling".
"""

import json
import os
import sys
import time

from absl import app
from absl import flags
import numpy as np
from ml_collections import config_flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# pylint: disable=g-import-not-at-top,wrong-import-position
from mirai_jax import evaluate
from mirai_jax import inference
from mirai_jax import scores
from mirai_jax import workdir as workdir_lib
from mirai_jax.build import synthetic
# pylint: enable=g-import-not-at-top,wrong-import-position

_CONFIG = config_flags.DEFINE_config_file(
    'config', os.path.join(os.path.dirname(__file__), '..', 'configs',
                           'demo.py'))
_WORKDIR = flags.DEFINE_string('workdir', None, 'A trained workdir.',
                               required=True)
_SPLIT = flags.DEFINE_string('split', 'validation', 'The split swept.')
_TASK = flags.DEFINE_string('task', 'continue',
                            'A task the transformer was trained for.')
_TOP_KS = flags.DEFINE_list('top_ks', ['0', '2', '4', '8'],
                            "sample.mean_top_k values; 0 = decode 'tokens'.")
_THRESHOLDS = flags.DEFINE_list(
    'thresholds', ['0', '0.1', '0.15', '0.2', '0.25', '0.3'],
    'evaluate.paste_threshold values.')


def sweep(config, workdir: str, mesh, source, episodes: str, top_k: int,
          thresholds, task: str):
  """{threshold: (MSE, mouth MSE own sound, mouth MSE other sound)} over
  the clips of `source`; the Predictor is built anew for each `top_k`,
  which its jitted sampler reads from the config."""
  config.sample.decode = 'mean' if top_k else 'tokens'
  config.sample.mean_top_k = top_k
  config.evaluate.paste = 'residual'
  p = inference.Predictor(config, workdir, mesh, task)
  n, size, f = len(source), config.evaluate.batch_size, p.frames
  scored = np.flatnonzero(~p.given)  # evaluate's frames: never a given one
  total = {t: np.zeros(3) for t in thresholds}
  for s in range(0, n, size):
    # evaluate's own loading and batching, so the clips and the other
    # clip's sound are those of evaluate's table.
    ids = list(range(s, min(s + size, n)))
    rows = [evaluate._load(source[i], p) for i in ids]  # pylint: disable=protected-access
    other = [evaluate._load(source[(i + n // 2) % n], p) for i in ids]  # pylint: disable=protected-access
    b = evaluate._batch(p, rows, other, size, mesh, 'residual')  # pylint: disable=protected-access
    m = len(rows)
    truths = [synthetic.read_truth(episodes, r['episode']) for r in rows]
    boxes = None
    if all(t is not None for t in truths):
      boxes = np.stack([synthetic.mouth_boxes(t, p.records.clip_spec,
                                              r['start'], f)[scored]
                        for t, r in zip(truths, rows)])
    real = b.real[:m, scored]
    for j, sound in enumerate(('audio', 'mismatched_audio')):
      toks, means = p.generate(b.idx, b.feats[sound])
      raw = p.render(toks, means)
      for t in thresholds:
        # finish reads it at each call; the sweep sets it for every job.
        config.evaluate.update(paste_threshold=t, paste_threshold_by_job='')
        out = p.finish(raw, toks, b.video, b.still)[:m, scored]
        if j == 0:
          total[t][0] += ((out - real) ** 2).mean(axis=(1, 2, 3, 4)).sum()
        if boxes is not None:
          total[t][1 + j] += scores.box_mse(real, out, boxes).mean(1).sum()
  return {t: tuple(v / n) for t, v in total.items()}


def main(_):
  config, workdir = _CONFIG.value, _WORKDIR.value
  thresholds = [float(t) for t in _THRESHOLDS.value]
  mesh = workdir_lib.make_mesh(config)
  source = workdir_lib.open_dataset(config, workdir, ('evaluate',)
                                    ).as_data_source(split=_SPLIT.value)
  episodes, _ = workdir_lib.data_paths(config, workdir)
  rows = {}
  for k in (int(x) for x in _TOP_KS.value):
    t0 = time.time()
    got = sweep(config, workdir, mesh, source, episodes, k, thresholds,
                _TASK.value)
    for t, (mse, own, other) in got.items():
      rows[(k, t)] = mse
      print(json.dumps(dict(
          benchmark='decode_sweep', split=_SPLIT.value, task=_TASK.value,
          decode='mean' if k else 'tokens', mean_top_k=k,
          paste_threshold=t, mse=round(mse, 6),
          mouth_mse=round(own, 6) if own else None,
          mouth_mse_other_sound=round(other, 6) if other else None,
          seconds=round(time.time() - t0, 1))), flush=True)
  head = f"{'decode':<12}" + ''.join(f'{t:>9g}' for t in thresholds)
  print(f'MSE of {_TASK.value} on {_SPLIT.value} by evaluate.paste_threshold')
  print(head + '\n' + '-' * len(head))
  for k in (int(x) for x in _TOP_KS.value):
    name = f'mean top {k}' if k else 'tokens'
    print(f'{name:<12}' + ''.join(f'{rows[(k, t)]:>9.5f}' for t in thresholds))


if __name__ == '__main__':
  app.run(main)
