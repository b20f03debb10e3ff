r"""Tokenizer architectures at matched parameters: step time and quality per second.

  python bench/tokenizer_arch.py [--params=1.1] [--rounds=3] [--seconds=120]
      [--archs=3d/uniform,2+1d/uniform,3d/latent,2+1d/latent]
      [--batch=4 --frames=16 --size=64 --spatial=4 --temporal=4]
      [--recon=l1|mse --vq_dim=32] [--videogpt=CHECKOUT --torch_python=PY]
      [--cpu_devices=N] [--footage=A.mp4,B.mkv --footage_val=C.mkv]

For each `tokenizer.conv`/`tokenizer.layout` candidate, channels (c, 2c, 4c)
are chosen so that its parameters come closest to each `--params` (millions).
Then:
  1. Step time: stage 1's real jit-compiled update (train/tokenizer.py) on
     random clips, the candidates interleaved (A, B, C, D, A, B, ...) for
     `--rounds` rounds so that a busy machine slows all alike; the median.
     Also the analytic FLOPs of a step (train/flops.py) and the parameters.
  2. Quality per second (`--seconds` > 0, at the first `--params` only):
     each candidate trains for the same wall-clock time, interleaved in
     slices, on clips of the demo's synthetic episodes (rendered in memory,
     no H.264) or of real video files (`--footage`, decoded by ffmpeg, cut
     inside shots), then reports validation PSNR/SSIM of the trained and
     the EMA parameters on clips of other episodes or files, its steps,
     their mean time (`step_s_trained`: the rate to compare when the step
     timings of 1. were disturbed) and the steps at each slice's end.
Prints one JSON line per result. Defaults follow issue 16 (batch 4 x 16
frames x 64x64, x4 in time and space, VQ, float32). Figures: README
"Stage 1".

With --videogpt=CHECKOUT (a clone of github.com/wilson1yan/VideoGPT) its
VQ-VAE joins both comparisons as one more candidate, trained by its own
step in its own process (bench/videogpt_worker.py, under --torch_python, a
Python with torch; --videogpt_threads torch threads): 64 hidden channels, 2
residual layers and 512 codes at ~1.1M parameters, its defaults (240, 4,
2048) at ~21M, as in issue 16. It sees the same clips; its quality is
measured on its reconstructions by the same PSNR/SSIM code.
"""

import json
import os
import subprocess
import sys
import tempfile
import time

from absl import app
from absl import flags
import dm_pix as pix
import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# pylint: disable=g-import-not-at-top,wrong-import-position
from configs import demo
from mirai_jax import mesh as mesh_lib
from mirai_jax import xla_options
from mirai_jax.build import synthetic
from mirai_jax.data import pipeline
from mirai_jax.models import from_config
from mirai_jax.models import tokenizer as tokenizer_lib
from mirai_jax.train import flops
from mirai_jax.train import loop
from mirai_jax.train import optim
from mirai_jax.train import tokenizer
# pylint: enable=g-import-not-at-top,wrong-import-position

_ARCHS = flags.DEFINE_list(
    'archs', ['3d/uniform', '2+1d/uniform', '3d/latent', '2+1d/latent'],
    'conv/layout[/pP][/nonorm][/pw][/lin][/lrX][/wsd] candidates (pP: '
    'tokenizer.patch=P, space-to-depth first; nonorm: tokenizer.norm=none; '
    'pw: tokenizer.decoder_stem=pointwise; lin: '
    'tokenizer.pixel_layers=linear; lrX: peak learning rate X instead of '
    '--lr; wsd: the lr held, then linear to lr x final_lr_ratio over the '
    'last --decay_slices of the quality run); 3d/uniform is the '
    'architecture before issue 16.')
_PARAMS = flags.DEFINE_list('params', ['1.1'], 'Target sizes, millions.')
_ROUNDS = flags.DEFINE_integer('rounds', 3, 'Interleaved timing rounds.')
_SECONDS = flags.DEFINE_float('seconds', 120, 'Training time per candidate '
                              'for the quality comparison; 0 skips it.')
_SLICES = flags.DEFINE_integer('slices', 4, 'Interleaved slices of it.')
_BATCH = flags.DEFINE_integer('batch', 4, 'Clips per step.')
_FRAMES = flags.DEFINE_integer('frames', 16, 'Frames per clip.')
_SIZE = flags.DEFINE_integer('size', 64, 'Frame height and width.')
_SPATIAL = flags.DEFINE_integer('spatial', 4, 'tokenizer.spatial')
_TEMPORAL = flags.DEFINE_integer('temporal', 4, 'tokenizer.temporal')
_KT = flags.DEFINE_integer('temporal_kernel', 3, 'tokenizer.temporal_kernel')
_BLOCKS = flags.DEFINE_integer('num_res_blocks', 2, 'tokenizer.num_res_blocks')
_LR = flags.DEFINE_float('lr', 1e-3, 'Peak learning rate (10 warm-up steps).')
_DECAY_STEPS = flags.DEFINE_integer(
    'decay_steps', 0, 'Steps of the cosine decay to the lr times '
    'tokenizer.final_lr_ratio, as the stage trains (the steps --seconds '
    'allows; past them the lr stays there); 0 = the lr held (100k steps of '
    'decay).')
_DECAY_SLICES = flags.DEFINE_integer(
    'decay_slices', 1, "Slices of --seconds over which '/wsd' candidates "
    'decay their lr (the steps they take estimated from their rate so far).')
flags.register_multi_flags_validator(
    ['decay_slices', 'slices'], lambda f: 0 < f['decay_slices'] < f['slices'],
    "--decay_slices must be at least 1 and below --slices (a '/wsd' "
    "candidate's rate is measured before it decays).")
_EPISODES = flags.DEFINE_integer('episodes', 8, 'Synthetic training episodes '
                                 '(12 s each); 2 more are validation.')
_FOOTAGE = flags.DEFINE_list(
    'footage', [], 'Video files to train on instead of the synthetic '
    'episodes (decoded at --size, centre-cropped square; windows inside '
    'shots, static ones dropped); needs --footage_val.')
_FOOTAGE_VAL = flags.DEFINE_list(
    'footage_val', [], 'Other video files whose windows are the validation '
    'clips with --footage.')
flags.register_multi_flags_validator(
    ['footage', 'footage_val'],
    lambda f: bool(f['footage']) == bool(f['footage_val']),
    '--footage and --footage_val go together: train on some files, '
    'validate on others.')


def _files_exist(paths: list[str]) -> bool:
  missing = [p for p in paths if not os.path.isfile(p)]
  if missing:
    raise flags.ValidationError('no such file: ' + ', '.join(missing))
  return True


flags.register_validator('footage', _files_exist)
flags.register_validator('footage_val', _files_exist)
_VAL_CLIPS = flags.DEFINE_integer('val_clips', 16, 'Validation clips.')
_RECON = flags.DEFINE_string('recon', 'l1', 'tokenizer.loss.recon: l1 | mse '
                             "(VideoGPT's: mse).")
_VQ_DIM = flags.DEFINE_integer('vq_dim', 32, "tokenizer.vq_dim (VideoGPT's "
                               'embedding_dim: 256).')
_VIDEOGPT = flags.DEFINE_string('videogpt', '', 'A VideoGPT checkout: its '
                                'VQ-VAE joins the comparison.')
_TORCH_PYTHON = flags.DEFINE_string('torch_python', sys.executable,
                                    'A Python with torch, for --videogpt.')
_VIDEOGPT_THREADS = flags.DEFINE_integer('videogpt_threads', 1,
                                         'torch.set_num_threads for VideoGPT.')
_CPU_DEVICES = flags.DEFINE_integer(
    'cpu_devices', 0, 'config.mesh.cpu_devices for ours: the CPU split into '
    'that many devices, the batch over them (one thread each at one per '
    "core); 0 = jax's one device on every core.")


def parse(arch: str) -> dict:
  """'2+1d/latent', '2+1d/latent/p2' or '2+1d/latent/p4/nonorm/pw' -> the
  tokenizer fields it sets: conv, layout, patch (pP), norm ('nonorm': none;
  else group), decoder_stem ('pw': pointwise; else conv), pixel_layers
  ('lin': linear; else conv), lr ('lr3e-3': that peak learning rate
  instead of --lr) and schedule ('wsd'; else cosine)."""
  conv, layout, *rest = arch.split('/')
  out = dict(conv=conv, layout=layout, patch=1, norm='group',
             decoder_stem='conv', pixel_layers='conv', schedule='cosine')
  for part in rest:
    if part == 'wsd':
      out['schedule'] = 'wsd'
    elif part == 'nonorm':
      out['norm'] = 'none'
    elif part == 'pw':
      out['decoder_stem'] = 'pointwise'
    elif part == 'lin':
      out['pixel_layers'] = 'linear'
    elif part[:1] == 'p' and part[1:].isdigit():
      out['patch'] = int(part[1:])
    elif part.startswith('lr') and _is_number(part[2:]):
      out['lr'] = float(part[2:])
    else:
      raise ValueError(f'--archs: {arch!r} has {part!r}; use pP, nonorm, pw, '
                       'lin, lrX or wsd')
  return out


def _is_number(text: str) -> bool:
  try:
    float(text)
  except ValueError:
    return False
  return True


def make_config(arch: str, c: int, codes: int):
  config = demo.get_config()
  config.tokenizer.update(dict(
      channels=(c, 2 * c, 4 * c), num_res_blocks=_BLOCKS.value,
      spatial=_SPATIAL.value, temporal=_TEMPORAL.value,
      temporal_kernel=_KT.value, quantizer='vq', vq_codes=codes,
      train_frames=0, batch_size=_BATCH.value, lr=_LR.value, warmup_steps=10,
      steps=_DECAY_STEPS.value or 100_000, vq_dim=_VQ_DIM.value))
  config.tokenizer.update(parse(arch))
  config.tokenizer.loss.recon = _RECON.value
  return config


def spec() -> dict:
  return dict(frames=_FRAMES.value, height=_SIZE.value, width=_SIZE.value)


def n_params(config) -> int:
  clip = jax.ShapeDtypeStruct((1, _FRAMES.value, _SIZE.value, _SIZE.value, 3),
                              jnp.float32)
  shapes = jax.eval_shape(from_config.tokenizer(config).init,
                          jax.random.key(0), clip)
  return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(shapes['params']))


def matched(arch: str, target: float, codes: int):
  """The config of `arch` whose (c, 2c, 4c) channels (c even) give the
  parameter count nearest `target`; counts grow with c, so bisect."""
  count = lambda c: n_params(make_config(arch, c, codes))
  lo, hi = 1, 128  # c = 2 * k
  while hi - lo > 1:
    mid = (lo + hi) // 2
    lo, hi = (mid, hi) if count(2 * mid) < target else (lo, mid)
  best = min((2 * lo, 2 * hi), key=lambda c: abs(count(c) - target))
  config = make_config(arch, best, codes)
  return config, n_params(config)


class Candidate:
  """One architecture's real update step, its state and its clock."""

  def __init__(self, arch, config, params):
    self.arch, self.config, self.params = arch, config, params
    # As stage 1 runs it: the batch split over the mesh, the state replicated.
    self.mesh = mesh_lib.make_mesh()
    self.replicated = mesh_lib.replicated(self.mesh)
    self.update = self.compile_update()  # sets self.parts
    self.state = self.fresh_state(0)
    self.times, self.trained_s, self.steps = [], 0.0, 0
    clip = jnp.zeros((1, _FRAMES.value, _SIZE.value, _SIZE.value, 3))
    fwd = flops.conv_flops(lambda p, v: self.parts.model.apply(
        {'params': p, **self.state.model_state}, v), self.state.params, clip)
    self.flops = flops.tokenizer_flops(fwd, batch=_BATCH.value)

  def compile_update(self):
    """The update step of self.config as it stands (its schedule included),
    with the parts it was built from in self.parts."""
    self.parts = tokenizer.setup(self.config, spec(), _FRAMES.value)
    return loop.jit_update(
        tokenizer.make_update(self.config.tokenizer, self.parts,
                              _FRAMES.value, 0),
        self.replicated, self.mesh, xla_options.convolutions())

  def begin_decay(self, seconds_left: float, batch) -> None:
    """A 'wsd' candidate's lr, held so far, goes down over the steps its
    rate so far allows in `seconds_left` (the schedule is one of steps: the
    update is compiled again, outside the clock, and the state carries on)."""
    cfg = self.config.tokenizer
    if cfg.schedule != 'wsd':
      return
    left = max(1, round((self.steps - 1) / self.trained_s * seconds_left))
    cfg.steps = self.steps + left
    cfg.decay_fraction = left / cfg.steps
    self.update = self.compile_update()
    batch = jax.device_put(batch, pipeline.data_sharding(self.mesh))
    self.update = self.update.lower(self.state, batch).compile()

  def fresh_state(self, seed: int):
    return jax.jit(self.parts.make_state, out_shardings=self.replicated)(
        jax.random.key(seed))

  def step(self, batch) -> float:
    batch = jax.device_put(batch, pipeline.data_sharding(self.mesh))
    start = time.perf_counter()
    self.state, metrics = self.update(self.state, batch)
    jax.block_until_ready(metrics)
    return time.perf_counter() - start

  def start_training(self, train: np.ndarray, val: np.ndarray,
                     batches) -> None:
    del train, val  # drawn by `batches`
    self.state = self.fresh_state(1)
    self.step(batches())  # compiled already; one step to be fair with the rest
    self.trained_s, self.steps = 0.0, 1

  def train_until(self, seconds: float, batches) -> None:
    while self.trained_s < seconds:  # the last step may run past; it counts
      self.trained_s += self.step(batches())
      self.steps += 1

  def reconstruct(self, val: np.ndarray, ema: bool = False) -> np.ndarray:
    """Reconstructions of uint8 clips, float32 in [0, 1], by the trained
    parameters or (`ema`) their moving average, which stage 1 evaluates."""
    model, state = self.parts.model, self.state
    params = state.ema_params if ema else state.params
    apply = jax.jit(lambda v: model.apply(
        {'params': params, **state.model_state}, v)[0],
                    compiler_options=xla_options.convolutions())
    return np.concatenate([np.asarray(tokenizer_lib.to_unit(jnp.clip(apply(
        tokenizer_lib.to_float(jnp.asarray(val[i:i + _BATCH.value]))), -1, 1)))
                           for i in range(0, len(val), _BATCH.value)])

  def row(self, **extra) -> dict:
    cfg = self.config.tokenizer
    fields = {k: v for k, v in parse(self.arch).items() if k != 'lr'}
    wsd = cfg.schedule == 'wsd'
    return dict(**fields, channels=list(cfg.channels),
                params_m=round(self.params / 1e6, 3), vq_codes=cfg.vq_codes,
                vq_dim=cfg.vq_dim, recon=cfg.loss.recon, lr=cfg.lr,
                final_lr=cfg.lr * cfg.final_lr_ratio,
                decay_steps=(round(cfg.steps * cfg.decay_fraction) if wsd
                             else _DECAY_STEPS.value),
                **({'lr_last': float(optim.schedule(cfg)(self.steps - 1))}
                   if self.steps else {}), **extra)


class VideoGPT:
  """VideoGPT's VQ-VAE in its own process (bench/videogpt_worker.py), with
  the methods of Candidate that the comparisons call."""

  def __init__(self, checkout: str, size_m: float):
    self.arch = 'videogpt'
    # Issue 16's two sizes: 64 hidden, 2 residual layers, 512 codes; or
    # VideoGPT's defaults.
    self.hiddens, self.res_layers, self.codes = (
        (64, 2, 512) if size_m < 5 else (240, 4, 2048))
    worker = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                          'videogpt_worker.py')
    self.proc = subprocess.Popen([_TORCH_PYTHON.value, worker],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                 text=True)
    self.params = self._call(
        'init', checkout=os.path.abspath(checkout), hiddens=self.hiddens,
        res_layers=self.res_layers, codes=self.codes, embedding_dim=256,
        threads=_VIDEOGPT_THREADS.value, frames=_FRAMES.value,
        size=_SIZE.value)['params']
    self.times, self.trained_s, self.steps, self.flops = [], 0.0, 0, 0.0
    self.tmp = tempfile.mkdtemp(prefix='videogpt_')

  def _call(self, cmd: str, **kw) -> dict:
    self.proc.stdin.write(json.dumps(dict(cmd=cmd, **kw)) + '\n')
    self.proc.stdin.flush()
    line = self.proc.stdout.readline()
    if not line:
      raise RuntimeError(f'bench/videogpt_worker.py stopped at {cmd!r} (its '
                         'error is above); is torch installed for '
                         f'--torch_python={_TORCH_PYTHON.value}?')
    return json.loads(line)

  def step(self, batch) -> float:  # random clips of the batch's shape
    return self._call('step', batch=int(batch['video'].shape[0]),
                      seed=len(self.times))['seconds']

  def start_training(self, train: np.ndarray, val: np.ndarray,
                     batches) -> None:
    """A fresh model (the timing steps trained the first) on these clips."""
    del batches  # it draws from `train` in its own process
    paths = [os.path.join(self.tmp, f'{k}.npy') for k in ('train', 'val')]
    np.save(paths[0], train)
    np.save(paths[1], val)
    self._call('data', train=paths[0], val=paths[1], batch=_BATCH.value)
    self.trained_s, self.steps = 0.0, 0

  def train_until(self, seconds: float, batches) -> None:
    del batches  # it draws from the clips of start_training
    got = self._call('train', until=seconds)
    self.trained_s, self.steps = got['seconds'], got['steps']

  def reconstruct(self, val: np.ndarray) -> np.ndarray:
    out = os.path.join(self.tmp, 'recon.npy')
    self._call('recon', out=out)
    return np.load(out)

  def row(self, **extra) -> dict:
    return dict(conv='videogpt', layout=f'{self.res_layers} axial residual '
                'layers at the latent', patch=1, channels=[self.hiddens],
                params_m=round(self.params / 1e6, 3), vq_codes=self.codes,
                torch_threads=_VIDEOGPT_THREADS.value, **extra)


def random_batch(seed: int) -> dict:
  rng = np.random.default_rng(seed)
  shape = (_BATCH.value, _FRAMES.value, _SIZE.value, _SIZE.value, 3)
  return {'video': jnp.asarray(rng.integers(0, 255, shape, dtype=np.uint8))}


def time_steps(cands, size_m: float) -> None:
  for c in cands:  # compile and warm up
    c.step(random_batch(0))
  for r in range(_ROUNDS.value):
    for c in cands:
      c.times.append(c.step(random_batch(r + 1)))
  for c in cands:
    s = float(np.median(c.times))
    print(json.dumps(dict(
        benchmark='tokenizer_arch_step', **header(), target_m=size_m,
        **c.row(step_s=round(s, 3), step_s_all=[round(t, 3) for t in c.times],
                clips_per_s=round(_BATCH.value / s, 3),
                # VideoGPT's step is torch's: not counted here.
                tflop_per_step=round(c.flops / 1e12, 4) if c.flops else None,
                gflop_per_s=round(c.flops / s / 1e9, 1) if c.flops else None
                ))), flush=True)


def header() -> dict:
  return dict(device=jax.devices()[0].device_kind, cores=os.cpu_count(),
              devices=jax.device_count(),
              xla_threads_per_device=(
                  1 if mesh_lib.one_thread_per_device() else 'all'),
              batch=_BATCH.value,
              clip=f'{_FRAMES.value}x{_SIZE.value}x{_SIZE.value}',
              spatial=_SPATIAL.value, temporal=_TEMPORAL.value,
              temporal_kernel=_KT.value, num_res_blocks=_BLOCKS.value)


def clips(seeds) -> np.ndarray:
  """16-frame (`--frames`) windows inside shots of rendered episodes, at
  `--size` (rendered at twice that and averaged 2x2, as a downscale)."""
  t, s = _FRAMES.value, _SIZE.value
  out = []
  for seed in seeds:
    ep = synthetic.render_episode(seed, 12.0, 2 * s, 2 * s)
    small = ep.frames.reshape(-1, s, 2, s, 2, 3).mean((2, 4)).astype(np.uint8)
    for a, b in ep.truth['shots']:
      out += [small[k:k + t] for k in range(a, b - t + 1, t)]
  return np.stack(out)


def footage_clips(paths: list[str]) -> np.ndarray:
  """`--frames` windows, one after the other, inside the shots of real video
  files, cut by the dataset builder's own code (`build/clips.py`: decoded at
  `--size` square, centre crop; clips where nothing moves dropped)."""
  # Here, not at the top: the GPU image runs this bench without ffmpeg.
  # pylint: disable-next=g-import-not-at-top
  from mirai_jax.build import clips as clips_lib
  t, s = _FRAMES.value, _SIZE.value
  spec = clips_lib.ClipSpec(height=s, width=s, frames=t, stride=t,
                            drop_static=True)
  out = []
  for path in paths:
    try:
      records, report = clips_lib.episode_clips(path, path, spec)
    except clips_lib.VideoError as e:
      raise SystemExit(f'{e} (--footage/--footage_val)') from None
    print(f'{path}: {report.frames} frames, {report.shots} shots, '
          f'{report.clips} clips', file=sys.stderr, flush=True)
    out += [r['video'] for r in records]
  return np.stack(out)


def quality_data() -> tuple[np.ndarray, np.ndarray]:
  """Training clips and `--val_clips` validation clips (a fixed draw)."""
  if _FOOTAGE.value:
    train = footage_clips(_FOOTAGE.value)
    val = footage_clips(_FOOTAGE_VAL.value)
  else:
    train = clips(range(_EPISODES.value))
    val = clips(range(10_000, 10_002))
  rng = np.random.default_rng(0)
  return train, val[rng.permutation(len(val))[:_VAL_CLIPS.value]]


def evaluate(c, val: np.ndarray) -> dict:
  """Mean PSNR and SSIM over every frame of the clips, per frame in [0, 1]:
  one code for every candidate, VideoGPT included (which keeps no moving
  average; ours also report their EMA parameters' as `*_ema`)."""
  flat = lambda v: jnp.asarray(v, jnp.float32).reshape(-1, *v.shape[2:])
  real = flat(val / 255.0)
  out = {}
  for suffix, kw in (('', {}), ('_ema', dict(ema=True))):
    if kw and isinstance(c, VideoGPT):
      continue
    fake = flat(c.reconstruct(val, **kw))
    out[f'val_psnr{suffix}'] = round(float(pix.psnr(real, fake).mean()), 2)
    out[f'val_ssim{suffix}'] = round(float(pix.ssim(real, fake).mean()), 4)
  return out


def names(paths: list[str]) -> list[str] | str:
  return [os.path.basename(p) for p in paths] or 'synthetic'


def train_for_seconds(cands, train: np.ndarray, val: np.ndarray) -> None:
  rng = np.random.default_rng(0)
  per_slice = _SECONDS.value / _SLICES.value
  batches = lambda: {'video': jnp.asarray(
      train[rng.integers(0, len(train), _BATCH.value)])}
  for c in cands:
    c.start_training(train, val, batches)
  start = time.perf_counter()
  # Steps at the end of each slice: a slice that ran beside other load on
  # the machine shows up as fewer steps than its neighbours.
  slice_steps = {id(c): [] for c in cands}
  for k in range(_SLICES.value):
    for c in cands:
      if k == _SLICES.value - _DECAY_SLICES.value and isinstance(c, Candidate):
        c.begin_decay(_SECONDS.value - c.trained_s, batches())
      c.train_until(per_slice * (k + 1), batches)
      slice_steps[id(c)].append(c.steps)
    # Progress on stderr: stdout stays one JSON line per result.
    left = (time.perf_counter() - start) / (k + 1) * (_SLICES.value - k - 1)
    print(f'slice {k + 1}/{_SLICES.value}: '
          + ', '.join(f'{c.arch} {c.steps} steps' for c in cands)
          + f'; about {left / 60:.0f} min left', file=sys.stderr, flush=True)
  for c in cands:
    print(json.dumps(dict(
        benchmark='tokenizer_arch_quality', **header(),
        train_clips=len(train), val_clips=len(val),
        train_data=names(_FOOTAGE.value), val_data=names(_FOOTAGE_VAL.value),
        **c.row(seconds=round(c.trained_s, 1), steps=c.steps,
                step_s_trained=round(c.trained_s / max(c.steps, 1), 3),
                steps_at_slice_end=slice_steps[id(c)],
                **evaluate(c, val)))), flush=True)


def main(_):
  mesh_lib.split_cpu(_CPU_DEVICES.value)  # before jax starts
  # Decoded first, so that a bad file stops the run before minutes of timing.
  data = quality_data() if _SECONDS.value > 0 else None
  for i, size in enumerate(_PARAMS.value):
    target = float(size) * 1e6
    codes = 512 if target < 5e6 else 2048  # as issue 16's VideoGPT runs
    cands = [Candidate(a, *matched(a, target, codes)) for a in _ARCHS.value]
    if _VIDEOGPT.value:
      cands.append(VideoGPT(_VIDEOGPT.value, float(size)))
    time_steps(cands, float(size))
    if i == 0 and _SECONDS.value > 0:
      train_for_seconds(cands, *data)


if __name__ == '__main__':
  app.run(main)
