r"""Demo on built-in synthetic cartoon episodes; runs on 2 CPU cores.

  python -m mirai_jax.main --config=configs/demo.py --workdir=/tmp/mirai_demo
  python -m mirai_jax.main --config=configs/demo.py:long --workdir=/tmp/mirai_long

Stages:
  data         renders 36 synthetic episodes (12 s each, 23.976 fps, AAC
               stereo; ground truth JSON in <workdir>/episodes_truth) and
               builds anime_clips (30 / 3 / 3 episodes: 736 / 73 / 72 clips
               of 20x64x64);
  preview      a GIF grid and an MP4 (with sound) of a few clips;
  tokenizer    stage 1, 1500 steps of a 0.25M-parameter FSQ tokenizer (x8
               space: 2x2 space-to-depth, then 2 strided levels; 8x8 tokens
               per frame, 1000 codes);
  tokenize     stage 2, token records of every split;
  transformer  stage 3, 400 steps of a 1.2M-parameter transformer (4 layers,
               width 128) on windows of 2 known + 4 predicted frames;
  evaluate     the table of evaluate.py on the test split;
  predict      a continuation of the first test episode from 4.0 s.

Run time and results: README, "Set-up: two commands" (14-17 min on 2 CPU
cores). Too short to beat copy-last-frame: see 'long'.

'long' (120 episodes, tokenizer and transformer 2000 steps each): about
45 min on 2 CPU cores; results in the README, "What the demo shows".

Run one stage with --mode=transformer; change any field with e.g.
--config.transformer.steps=1000.
"""

import ml_collections


def get_config(arg: str = ''):
  """arg '' = the demo; 'long' = the same pipeline trained longer (< 1 h)."""
  if arg not in ('', 'long'):
    raise ValueError(f"configs/demo.py takes '' or 'long' after a colon, got {arg!r}")
  c = ml_collections.ConfigDict()
  c.stages = ('data,preview,tokenizer,tokenize,transformer,evaluate,predict')

  c.data = ml_collections.ConfigDict()
  # Folder of episode files (the TFDS manual dir); '' = <workdir>/episodes.
  c.data.episodes = ''
  c.data.synthetic = ml_collections.ConfigDict(dict(
      # Many short episodes: the variety of characters and colours, not the
      # length, is what the models generalise from.
      num_episodes=36,  # 0: use the episodes already in data.episodes
      seconds=12.0, height=240, width=320, seed=0))
  c.data.data_dir = ''  # '' = <workdir>/tensorflow_datasets
  c.data.builder_config = '64x64_t20'  # tfds_builders/anime_clips CONFIGS
  c.data.split_file = ''  # '' = stable hash of file names (synthetic: fixed)
  # True: build the dataset again even if it is up to date (it is rebuilt
  # anyway when the episodes or the split file change).
  c.data.rebuild = False
  c.data.workers = 0  # episodes decoded at once; 0 = half the cores
  # An Apache Beam build (README: Beam), e.g. 'DirectRunner'; '' = local.
  c.data.beam_runner = ''
  c.data.beam_options = ''  # its pipeline options, e.g. '--direct_num_workers=4'

  c.seed = 0
  # devices: 0 = all; fsdp > 1 also splits the parameters over that many.
  c.mesh = ml_collections.ConfigDict(dict(devices=0, fsdp=1))
  c.input = ml_collections.ConfigDict(dict(worker_count=0, flip=True))

  c.tokenizer = tokenizer_config()
  c.transformer = transformer_config()
  c.sample = ml_collections.ConfigDict(dict(
      temperature=0.0,  # 0 = greedy (best PSNR); try 1.0 with top_k=100
      top_k=0, top_p=1.0, seed=0))
  c.evaluate = ml_collections.ConfigDict(dict(
      split='test', batch_size=16, max_clips=0,  # max_clips 0 = all
      # How tokens become frames (evaluate.Predictor.finish): 'residual' = the
      # true last frame + the decoded change; 'block'; 'none' = plain decoding.
      paste='residual'))
  c.predict = ml_collections.ConfigDict(dict(
      video='',  # '' = the first test episode of the dataset
      start=4.0,  # seconds of the first predicted frame; < 0 = file's end
      windows=1,  # > 1: a rollout, each window continuing the last one
      out='',  # '' = <workdir>/predict
      scale=3))

  c.preview = ml_collections.ConfigDict(dict(
      split='train', num_clips=8, cols=4, scale=2))
  if arg == 'long':
    # 4x the episodes: at 30 the transformer overfits after ~500 steps.
    c.data.synthetic.num_episodes = 120
    c.tokenizer.update(steps=2000, eval_every=500)
    c.transformer.update(steps=2000, eval_every=500, checkpoint_every=500)
  return c


def transformer_config(**overrides) -> ml_collections.ConfigDict:
  """Stage 3. 2 known steps (frames) and 4 predicted steps of 8x8 tokens:
  384 tokens per window, 256 of them predicted."""
  t = ml_collections.ConfigDict(dict(
      task='continue',  # mirai_jax/tasks.py: continue | interpolate | outpaint
      frames=6,  # latent steps per training window (random start in the clip)
      context=2,  # known latent steps at the start of the window
      width=128, depth=4, heads=4, mlp_ratio=4, dropout=0.1,
      audio_channels=64, audio_layers=2,
      audio_dropout=0.2,  # clips trained without sound, for the no-audio mode
      mixed_precision=False,  # True: bf16 compute (GPU/TPU), f32 parameters
      # models/attention.py: auto = cuDNN flash on NVIDIA GPUs, Pallas on
      # TPUs, XLA below 512 tokens and blockwise flash above on CPUs.
      attention='auto',
      remat='none',  # none | dots | full: activation checkpointing per block
      loss_chunk=0,  # predicted tokens per loss chunk; 0 = fit 512 MB logits
      batch_size=16, steps=400, lr=1e-3, final_lr_ratio=0.05, warmup_steps=50,
      weight_decay=0.01, b1=0.9, b2=0.95, grad_clip=1.0, ema=0.99,
      log_every=25, checkpoint_every=200, keep=3,
      eval_every=100, eval_batches=3, eval_batch_size=16))
  t.update(overrides)
  return t


def tokenizer_config(**overrides) -> ml_collections.ConfigDict:
  """Stage 1. Sized to train on 2 CPU cores in a few minutes: per-frame
  convolutions (temporal_kernel=1, temporal=1), x4 spatial, FSQ 8x5x5x5."""
  t = ml_collections.ConfigDict(dict(
      channels=(16, 32, 64), num_res_blocks=1, patch=2, spatial=8, temporal=1,
      temporal_kernel=1, norm='none', quantizer='fsq', fsq_levels=(8, 5, 5, 5),
      # conv '3d' | '2+1d', layout 'uniform' | 'latent': README, "Stage 1".
      conv='3d', layout='uniform',
      vq_codes=1024, vq_dim=32, vq_commitment=0.25,
      mixed_precision=False,  # bf16 compute, f32 parameters
      remat='none',  # none | dots | full: activation checkpointing per block
      # One random frame from each of 32 clips per step: the same compute as
      # 8 clips x 4 frames, but 4x the variety (held drawings repeat).
      train_frames=1,  # random window of each clip (0 = the whole clip)
      batch_size=32, steps=1500, lr=2e-3, final_lr_ratio=0.05,
      warmup_steps=100, weight_decay=0.0, b1=0.9, b2=0.99, grad_clip=1.0,
      ema=0.99,
      loss=dict(recon='l1', recon_weight=1.0,
                perceptual_weight=0.0, perceptual_weights='',
                adversarial_weight=0.0, adversarial_start=500,
                disc_channels=(32, 64, 128), disc_lr=1e-4, lecam_weight=0.001),
      log_every=50, checkpoint_every=500, keep=3,
      eval_every=250, eval_batches=8, eval_batch_size=8))
  t.update(overrides)
  return t
