"""The sections of a run config, with their defaults and what each field means.

configs/demo.py and configs/kny.py are these with a few fields changed;
checks.py says which values each field takes. Every factory takes keyword
overrides: tokenizer(channels=(64, 128, 256), steps=100_000).
"""

from __future__ import annotations

import ml_collections

STAGES = 'data,preview,tokenizer,tokenize,transformer,evaluate,predict'


def run(**sections) -> ml_collections.ConfigDict:
  """A whole run config: every section at its default unless given."""
  c = ml_collections.ConfigDict()
  c.stages = sections.pop('stages', STAGES)
  c.data = sections.pop('data', None) or data()
  c.seed = sections.pop('seed', 0)
  # devices: 0 = all; fsdp > 1 also splits the parameters over that many.
  # cpu_devices > 0: the host CPU shown as that many devices, each a share of
  # the batch on one core at one per core or more (mesh.split_cpu); 0 = jax's
  # count (1). On CPU the batch sizes must then divide by it.
  c.mesh = sections.pop('mesh', None) or ml_collections.ConfigDict(
      dict(devices=0, fsdp=1, cpu_devices=0))
  # worker_count=0 reads in the training process (fast enough for both
  # stages: README, "Benchmarks").
  c.input = sections.pop('input', None) or ml_collections.ConfigDict(
      dict(worker_count=0, flip=True))
  for name, make in (('tokenizer', tokenizer), ('transformer', transformer),
                     ('sample', sample), ('evaluate', evaluate),
                     ('predict', predict), ('preview', preview),
                     ('pix2pix', pix2pix), ('multiscale', multiscale)):
    setattr(c, name, sections.pop(name, None) or make())
  for name, value in sections.items():  # e.g. workdir
    setattr(c, name, value)
  return c


def data(**overrides) -> ml_collections.ConfigDict:
  d = ml_collections.ConfigDict(dict(
      # Folder of episode files (the TFDS manual dir); '' = <workdir>/episodes.
      episodes='',
      synthetic=dict(
          num_episodes=0,  # > 0: render that many demo episodes first
          seconds=12.0, height=240, width=320, seed=0,
          # True: trees and clouds, and camera pans in half the shots
          # (mirai_jax/build/synthetic.py).
          scenery=False,
          hills=False),  # True: the horizon rolling hills, not straight
      data_dir='',  # '' = <workdir>/tensorflow_datasets
      builder_config='64x64_t20',  # mirai_jax/build/clips.py NAMED
      split_file='',  # '' = stable hash of file names (synthetic: fixed)
      # True: build the dataset again even if it is up to date (it is rebuilt
      # anyway when the episodes or the split file change).
      rebuild=False,
      workers=0,  # episodes decoded at once; 0 = half the cores
      # An Apache Beam build (README: Beam), e.g. 'DirectRunner'; '' = local.
      beam_runner='',
      beam_options=''))  # its pipeline options, e.g. '--direct_num_workers=4'
  d.update(overrides)
  return d


def tokenizer(**overrides) -> ml_collections.ConfigDict:
  """Stage 1. Sized to train on 2 CPU cores in a few minutes: per-frame
  convolutions (temporal_kernel=1, temporal=1), x8 space, FSQ 8x5x5x5."""
  t = ml_collections.ConfigDict(dict(
      channels=(16, 32, 64), num_res_blocks=1, patch=2, spatial=8, temporal=1,
      temporal_kernel=1, norm='none', quantizer='fsq', fsq_levels=(8, 5, 5, 5),
      # conv '3d' | '2+1d', layout 'uniform' | 'latent', decoder_stem
      # 'conv' | 'pointwise', pixel_layers 'conv' | 'linear': README,
      # "Stage 1".
      conv='3d', layout='uniform', decoder_stem='conv', pixel_layers='conv',
      vq_codes=1024, vq_dim=32, vq_commitment=0.25,
      mixed_precision=False,  # bf16 compute, f32 parameters
      remat='none',  # models/remat.py: none | dots | dots_attention | full
      # One random frame from each of 32 clips per step: the same compute as
      # 8 clips x 4 frames, but 4x the variety (held drawings repeat).
      train_frames=1,  # random window of each clip (0 = the whole clip)
      batch_size=32, steps=1500, lr=2e-3, final_lr_ratio=0.05,
      # train/optim.py: cosine | wsd (held, then linear over the last
      # decay_fraction of the steps).
      schedule='cosine', decay_fraction=0.2,
      warmup_steps=100, weight_decay=0.0, b1=0.9, b2=0.99, grad_clip=1.0,
      ema=0.99,
      loss=dict(recon='l1', recon_weight=1.0,
                # perceptual_weight > 0 needs perceptual_weights=PATH.npz
                # (models/perceptual.py); nothing is downloaded.
                perceptual_weight=0.0, perceptual_weights='',
                adversarial_weight=0.0, adversarial_start=500,
                disc_channels=(32, 64, 128), disc_lr=1e-4, lecam_weight=0.001),
      log_every=50, checkpoint_every=500, keep=3,
      eval_every=250, eval_batches=8, eval_batch_size=8))
  t.update(overrides)
  return t


def transformer(**overrides) -> ml_collections.ConfigDict:
  """Stage 3. 2 known steps (frames) and 4 predicted steps of 8x8 tokens:
  384 tokens per window, 256 of them predicted."""
  t = ml_collections.ConfigDict(dict(
      # mirai_jax/tasks.py: continue | interpolate | outpaint, or a mix that
      # each batch draws from, e.g. 'continue:2,interpolate:1' (the first is
      # the main task: predict's default).
      tasks='continue',
      frames=6,  # latent steps per training window (random start in the clip)
      context=2,  # known latent steps at the start of the window
      width=128, depth=4, heads=4, mlp_ratio=4, dropout=0.1,
      # A learned gate per predicted token towards copying the token at its
      # place one step earlier (and, in-betweening, the end keyframe's):
      # models/transformer.py `copy_hints`. The demo's continuation: 19.3 %
      # below copy-last with it, 11.4 % without (README, "What the demo
      # shows").
      copy_hints=True,
      audio_channels=64, audio_layers=2,
      audio_dropout=0.2,  # clips trained without sound, for the no-audio mode
      mixed_precision=False,  # True: bf16 compute (GPU/TPU), f32 parameters
      # models/attention.py: auto = cuDNN flash on NVIDIA GPUs, Pallas on
      # TPUs, XLA below 512 tokens and blockwise flash above on CPUs.
      attention='auto',
      remat='none',  # models/remat.py: none | dots | dots_attention | full
      # Layers per iteration of the scan over layers; `depth` = straight-line
      # code (longer compiles, and XLA's CPU plan for kny needs 160 GB instead
      # of 57: README "Benchmarks").
      unroll=1,
      loss_chunk=0,  # predicted tokens per loss chunk; 0 = fit 512 MB logits
      batch_size=16, steps=400, lr=1e-3, final_lr_ratio=0.05, warmup_steps=50,
      schedule='cosine', decay_fraction=0.2,  # as the tokenizer's
      weight_decay=0.01, b1=0.9, b2=0.95, grad_clip=1.0, ema=0.99,
      log_every=25, checkpoint_every=200, keep=3,
      eval_every=100, eval_batches=3, eval_batch_size=16,
      # Validation clips (the first ones, the same at every evaluation) that
      # TensorBoard shows as true vs predicted frames, to watch the model
      # learn beyond its loss; each evaluation generates them once. 0 = off.
      summary_clips=2))
  t.update(overrides)
  return t


def sample(**overrides) -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict(dict(dict(
      temperature=0.0,  # 0 = greedy (best PSNR); try 1.0 with top_k=100
      top_k=0, top_p=1.0, seed=0,
      # Added to the logit of the token one step earlier at the same place:
      # > 0 keeps a drawing held unless the model is sure it changes
      # (sample.choose). Choose it on the validation split (README).
      hold_bias=0.0,
      # How generated tokens become frames (inference.Predictor.render):
      # 'tokens' decodes the drawn tokens (sharp, committed); 'mean' decodes
      # at each place the latent the model expects (the latents of its
      # `mean_top_k` likeliest tokens weighted by their probabilities): where
      # the model is unsure it shows the average of what it weighs, less
      # squared error, softer edges (README, "Sampling"). The tokens fed back
      # are the drawn ones either way.
      decode='tokens', mean_top_k=8), **overrides))


def evaluate(**overrides) -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict(dict(dict(
      split='test', batch_size=16, max_clips=0,  # max_clips 0 = all
      # > 0: also roll each test shot out over this many windows (a model
      # trained to continue; mirai_jax/rollouts.py); 0 = off.
      rollout=4,
      # With the metrics extra (perceptual_scores.py): LPIPS per frame, and
      # FVD over at most this many clips per method (0 = no FVD; I3D costs
      # ~2.5 s a clip on a CPU core).
      lpips=True, fvd_clips=256,
      # How tokens become frames (inference.Predictor.finish): 'residual' =
      # the true last frame + the decoded change; 'block'; 'none' = plain
      # decoding.
      paste='residual',
      # 'residual' only: a pixel whose decoded change is under this in every
      # channel (frames in [0, 1]) keeps the last true frame, a codec's dead
      # zone for the tokenizer's error around a changed token. Choose it on
      # the validation split (README, "What the demo shows"); 0 = off.
      paste_threshold=0.0,
      # Per job where it differs, 'job:threshold' comma-separated, jobs of
      # continue, interpolate, outpaint and rollout (inference.JOBS), e.g.
      # 'interpolate:0.1,rollout:0'; '' = paste_threshold for every job.
      paste_threshold_by_job=''), **overrides))


def predict(**overrides) -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict(dict(dict(
      video='',  # '' = the first test episode of the dataset
      start=4.0,  # seconds of the first predicted frame; < 0 = file's end
      windows=1,  # > 1: a rollout, each window continuing the last one
      seconds=0.0,  # task outpaint: seconds widened from start; 0 = to the end
      task='',  # '' = the transformer's main task (transformer.tasks)
      # In-betweening two pictures instead of a video (any size and format):
      first='', last='',  # the first and the last keyframe
      sound='',  # optional: its time 0 is the first keyframe
      fps=0.0,  # frame rate of the result; 0 = the dataset's clip rate
      out='',  # '' = <workdir>/predict
      scale=3), **overrides))


def preview(**overrides) -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict(dict(dict(
      split='train', num_clips=8, cols=4, scale=2), **overrides))


def _pixel_training(**fields) -> dict:
  """The training fields of a pixel baseline (train/baseline.py)."""
  return dict(dict(
      # Context frames it reads; 0 = the transformer's (its context steps x
      # the tokenizer's frames per step), so every method sees the same.
      inputs=0,
      batch_size=16, steps=600, lr=2e-4, final_lr_ratio=0.1, warmup_steps=20,
      schedule='cosine', decay_fraction=0.2,  # as the tokenizer's
      weight_decay=0.0, b1=0.5, b2=0.999, grad_clip=10.0, ema=0.99,
      disc_lr=2e-4,
      log_every=50, checkpoint_every=300, keep=2,
      eval_every=300, eval_batches=2, eval_batch_size=16), **fields)


def pix2pix(**overrides) -> ml_collections.ConfigDict:
  """Baseline: pix2pix as a next-frame predictor (models/pix2pix.py), fed
  back for longer horizons. Trained by --mode=pix2pix."""
  c = ml_collections.ConfigDict(_pixel_training(
      channels=(32, 64, 128, 128),  # U-Net levels (paper: 64 ... 512 x 8)
      disc_channels=(32, 64, 128),
      dropout=0.5,
      l1_weight=100.0, adversarial_weight=1.0))  # the paper's lambda = 100
  c.update(overrides)
  return c


def multiscale(**overrides) -> ml_collections.ConfigDict:
  """Baseline: Mathieu et al. 2016 (models/multiscale.py). Trained by
  --mode=multiscale; adversarial_weight=0 and gdl_weight=0 is the plain Lp
  ablation."""
  c = ml_collections.ConfigDict(_pixel_training(
      scales=4, channels=(32, 64, 32), kernels=(3, 5, 5, 7),
      disc_channels=(32, 64, 64), disc_hidden=128,
      recon='l2', recon_weight=1.0, gdl_weight=1.0, gdl_alpha=1.0,
      adversarial_weight=0.05))  # the paper's weights: 1, 1, 0.05
  c.update(overrides)
  return c
