r"""FVD's feature network against DeepMind's published I3D output.

  git clone https://github.com/deepmind/kinetics-i3d   # once, anywhere
  python bench/fvd_reference.py --checkout=PATH/kinetics-i3d

FVD is the Frechet distance of I3D features; `tests/test_lpips_fvd.py`
checks the distance, this checks the features. DeepMind's checkout holds an
example clip (UCF-101 v_CricketShot_g04_c01, 79 frames at 224x224) and the
output of their RGB Kinetics-400 model on it (`out/imagenet_rgb.txt`: the
norm of the logits and the top 20 classes). This runs
`mirai_jax.lpips_fvd`'s I3D (the weights of the `metrics` extra, read as
FVD reads them: [0, 1] frames mapped to [-1, 1]) on the same clip and
prints one JSON line: our top classes beside theirs. It exits with status 1
when the top class differs.

The clip is read from `data/v_CricketShot_g04_c01_rgb.npy` when the
checkout has it (a Git LFS-sized file some mirrors leave out), else from
the GIF beside it, whose 256-colour palette perturbs the input, so only the
ranking is comparable then. Figures: README, "Evaluate and predict"
(LPIPS and FVD). Needs `pip install -e '.[metrics]'` and Pillow.
"""

import json
import os
import platform
import re
import sys
import time

from absl import app
from absl import flags
import jax
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from mirai_jax import lpips_fvd  # pylint: disable=g-import-not-at-top,wrong-import-position

_CHECKOUT = flags.DEFINE_string(
    'checkout', None, 'a clone of github.com/deepmind/kinetics-i3d')
_TOP = flags.DEFINE_integer('top', 20, 'classes compared')

CLIP = 'data/v_CricketShot_g04_c01_rgb'


def read_clip(checkout: str) -> tuple[np.ndarray, str]:
  """(T, 224, 224, 3) in [0, 1] and the file it came from."""
  npy = os.path.join(checkout, CLIP + '.npy')
  if os.path.exists(npy):
    try:
      x = np.load(npy)  # (1, T, 224, 224, 3) in [-1, 1]
      return (x[0].astype(np.float32) + 1) / 2, npy
    except ValueError:  # a Git LFS pointer, not the array
      pass
  from PIL import Image, ImageSequence  # pylint: disable=g-import-not-at-top
  gif = os.path.join(checkout, CLIP + '.gif')
  with Image.open(gif) as im:
    frames = [np.asarray(f.convert('RGB')) for f in ImageSequence.Iterator(im)]
  return np.stack(frames).astype(np.float32) / 255.0, gif


def read_published(checkout: str) -> tuple[float, list[tuple[str, float]]]:
  """The norm of the logits and [(class, logit)] of out/imagenet_rgb.txt."""
  with open(os.path.join(checkout, 'out', 'imagenet_rgb.txt')) as f:
    text = f.read()
  norm = float(re.search(r'Norm of logits:\s*([\d.]+)', text).group(1))
  top = [(m.group(3).strip(), float(m.group(2))) for m in re.finditer(
      r'^([\d.e+-]+)\s+([\d.e+-]+)\s+(.+)$', text, re.M)]
  return norm, top


def main(argv):
  del argv
  checkout = _CHECKOUT.value
  if not checkout or not os.path.isdir(os.path.join(checkout, 'data')):
    raise app.UsageError(f'--checkout={checkout!r}: give a clone of '
                         'https://github.com/deepmind/kinetics-i3d (it holds '
                         'data/ and out/)')
  with open(os.path.join(checkout, 'data', 'label_map.txt')) as f:
    labels = f.read().splitlines()
  clip, source = read_clip(checkout)
  norm, published = read_published(checkout)
  t0 = time.time()
  logits = lpips_fvd.i3d_features(clip[None], batch=1)[0]
  seconds = time.time() - t0
  k = _TOP.value
  ours = [(labels[i], round(float(logits[i]), 3))
          for i in np.argsort(-logits)[:k]]
  theirs = [name for name, _ in published[:k]]
  index = {name: i for i, name in enumerate(labels)}
  probs = np.exp(logits - logits.max())
  probs /= probs.sum()
  # Their logits at their top classes against ours at the same classes.
  pairs = np.array([(v, logits[index[n]]) for n, v in published[:k]])
  out = dict(
      benchmark='i3d_reference', clip=os.path.relpath(source, checkout),
      frames=int(clip.shape[0]), seconds=round(seconds, 1),
      top1=ours[0][0], top1_probability=round(float(probs.max()), 4),
      published_top1=theirs[0],
      top1_match=ours[0][0] == theirs[0],
      logit_norm=round(float(np.linalg.norm(logits)), 2),
      published_logit_norm=norm,
      shared_in_top=len(set(n for n, _ in ours) & set(theirs)),
      top=k,
      logit_correlation_on_published_top=round(float(
          np.corrcoef(pairs[:, 0], pairs[:, 1])[0, 1]), 3),
      ours=ours[:5], published=published[:5],
      host=platform.node(), backend=jax.default_backend())
  print(json.dumps(out))
  return 0 if out['top1_match'] else 1


if __name__ == '__main__':
  app.run(main)
