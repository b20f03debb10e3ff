r"""VideoGPT's VQ-VAE, trained by its own step, for bench/tokenizer_arch.py.

  python bench/tokenizer_arch.py --videogpt=/path/to/VideoGPT \
      [--torch_python=/path/to/python-with-torch]

tokenizer_arch.py starts this file under a Python that has torch (a CPU
build installs from the package registry: pip install torch) and talks to
it one JSON line at a time on stdin/stdout, so that VideoGPT runs in its own
process beside the JAX candidates. Nothing of VideoGPT is copied here: its
`videogpt/vqvae.py` (and the `attention.py`, `utils.py` it imports) are
imported from the checkout given by path, with stand-ins for the two
imports a training step never calls (pytorch_lightning's LightningModule
base class, skvideo). The step is VQVAE.training_step (recon MSE / 0.06 +
commitment; EMA codebook) with VQVAE.configure_optimizers' Adam (lr 3e-4),
on clips scaled as VideoGPT's data loader scales them ([-0.5, 0.5],
channels first).

Commands (one JSON object per line; each answered by one):
  {"cmd": "init", "checkout": P, "hiddens": 64, "res_layers": 2,
   "codes": 512, "embedding_dim": 256, "threads": 1, "frames": 16,
   "size": 64}                                  -> {"params": N}
  {"cmd": "step", "batch": 4, "seed": 0}       -> {"seconds": s} (random clips)
  {"cmd": "data", "train": path.npy, "val": path.npy, "batch": 4}
                                               -> {} (a fresh model, seed 1)
  {"cmd": "train", "until": seconds}           -> {"seconds": s, "steps": n}
  {"cmd": "recon", "out": path.npy}            -> {} (val clips, [0, 1], NTHWC)
"""

import importlib
import json
import os
import sys
import time
import types

# bench/profile.py would stand in for the standard library's profile, which
# torch imports: this directory off the path first.
sys.path = [p for p in sys.path
            if os.path.abspath(p or '.') != os.path.dirname(
                os.path.abspath(__file__))]
# pylint: disable=g-import-not-at-top,wrong-import-position
import numpy as np
import torch
# pylint: enable=g-import-not-at-top,wrong-import-position


def load_vqvae(checkout: str):
  """VideoGPT's VQVAE class from a checkout, without its package __init__
  (which imports its GPT, data and download code) or pytorch_lightning."""
  pl = types.ModuleType('pytorch_lightning')

  class LightningModule(torch.nn.Module):
    def save_hyperparameters(self, *args, **kwargs):
      del args, kwargs

    def log(self, *args, **kwargs):
      del args, kwargs

  pl.LightningModule = LightningModule
  sys.modules['pytorch_lightning'] = pl
  sk = types.ModuleType('skvideo')
  sk.io = types.ModuleType('skvideo.io')
  sys.modules.update({'skvideo': sk, 'skvideo.io': sk.io})
  pkg = types.ModuleType('videogpt')
  pkg.__path__ = [os.path.join(checkout, 'videogpt')]
  sys.modules['videogpt'] = pkg
  return importlib.import_module('videogpt.vqvae').VQVAE


def to_input(clips: np.ndarray) -> torch.Tensor:
  """uint8 (B, T, H, W, 3) -> VideoGPT's (B, 3, T, H, W) in [-0.5, 0.5]."""
  x = torch.from_numpy(np.ascontiguousarray(clips)).float() / 255.0 - 0.5
  return x.permute(0, 4, 1, 2, 3).contiguous()


class Worker:

  def __init__(self):
    self.model = self.opt = None
    self.train = self.val = None
    self.trained_s, self.steps, self.batch = 0.0, 0, 4
    self.rng = np.random.default_rng(0)

  def init(self, checkout, hiddens, res_layers, codes, embedding_dim,
           threads, frames, size, seed=0):
    self.args = dict(checkout=checkout, hiddens=hiddens,
                     res_layers=res_layers, codes=codes,
                     embedding_dim=embedding_dim, threads=threads,
                     frames=frames, size=size)
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    args = types.SimpleNamespace(
        embedding_dim=embedding_dim, n_codes=codes, n_hiddens=hiddens,
        n_res_layers=res_layers, downsample=(4, 4, 4),
        sequence_length=frames, resolution=size)
    self.model = load_vqvae(checkout)(args)
    self.model.train()
    self.opt = self.model.configure_optimizers()
    self.shape = (frames, size, size, 3)
    return dict(params=sum(p.numel() for p in self.model.parameters()))

  def _step(self, clips) -> float:
    start = time.perf_counter()
    loss = self.model.training_step({'video': to_input(clips)}, 0)
    self.opt.zero_grad()
    loss.backward()
    self.opt.step()
    return time.perf_counter() - start

  def step(self, batch, seed):
    rng = np.random.default_rng(seed)
    clips = rng.integers(0, 255, (batch, *self.shape), dtype=np.uint8)
    return dict(seconds=self._step(clips))

  def data(self, train, val, batch):
    # The timing steps trained the first model: the quality run starts anew,
    # as the JAX candidates do (their state from key 1).
    self.init(**self.args, seed=1)
    self.train, self.val = np.load(train), np.load(val)
    self.batch, self.trained_s, self.steps = batch, 0.0, 0
    return {}

  def train_until(self, until):
    while self.trained_s < until:  # the last step may run past; it counts
      pick = self.rng.integers(0, len(self.train), self.batch)
      self.trained_s += self._step(self.train[pick])
      self.steps += 1
    return dict(seconds=self.trained_s, steps=self.steps)

  def recon(self, out):
    self.model.eval()
    got = []
    with torch.no_grad():
      for i in range(0, len(self.val), self.batch):
        _, x, _ = self.model(to_input(self.val[i:i + self.batch]))
        got.append((x.permute(0, 2, 3, 4, 1) + 0.5).clamp(0, 1).numpy())
    self.model.train()
    np.save(out, np.concatenate(got).astype(np.float32))
    return {}


def main():
  worker = Worker()
  calls = dict(init=worker.init, step=worker.step, data=worker.data,
               train=worker.train_until, recon=worker.recon)
  for line in sys.stdin:
    msg = json.loads(line)
    cmd = msg.pop('cmd')
    print(json.dumps(calls[cmd](**msg)), flush=True)


if __name__ == '__main__':
  main()
