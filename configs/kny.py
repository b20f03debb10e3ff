r"""Kimetsu no Yaiba (or any folder of episodes): the full pipeline at 128x128.

  python -m mirai_jax.main --config=configs/kny.py

Put the episode files (any container, frame rate, size and sound layout) in
~/mirai_jax/kny/episodes (or pass --config.data.episodes=FOLDER), or build the
dataset beforehand with
  python -m mirai_jax.prepare --manual_dir=FOLDER --config=128x128_t32 \
      --data_dir=~/mirai_jax/kny/tensorflow_datasets
Without either it stops at once and says so. Everything is written under
--workdir (default ~/mirai_jax/kny). On a TPU slice (README "Beyond one
machine"): build the dataset first, then
  launch/tpu_vm.sh run NAME ZONE -- --config=configs/kny.py \
      --workdir=gs://BUCKET/kny --config.data.data_dir=gs://BUCKET/tensorflow_datasets
and evaluate/predict afterwards on one machine with the same --workdir.

Stages: data (128x128 clips of 32 frames at the source rate, cut at scene
changes), tokenizer (x8 space, x4 time: 8 latent steps of 16x16 tokens per
clip, FSQ 15360 codes), tokenize, transformer (12 layers, width 768, 121.7M
parameters; 4 known steps = 16 frames, 4 predicted = 16 frames, 1024 tokens
generated per continuation), evaluate (test split) and predict.

Run time on one H100 80GB (bf16, measured with `bash bench/gpu_check.sh`;
the figures are in the README, "Kimetsu no Yaiba" and "Benchmarks"): about
0.9 days for the tokenizer and transformer at the step counts below. Memory
per step and the largest batch: `python bench/memory.py --config=configs/kny.py`.
Expected result: the audio model beats copy-last-frame and the mismatched-audio
model on the test split (see --mode=evaluate); not yet run on episodes.
"""

import ml_collections


def get_config():
  c = ml_collections.ConfigDict()
  c.stages = 'data,tokenizer,tokenize,transformer,evaluate,predict'
  c.workdir = '~/mirai_jax/kny'  # used when --workdir is not given

  c.data = ml_collections.ConfigDict(dict(
      episodes='',  # '' = <workdir>/episodes
      synthetic=dict(num_episodes=0, seconds=0.0, height=0, width=0, seed=0),
      data_dir='',  # '' = <workdir>/tensorflow_datasets
      builder_config='128x128_t32', split_file='', workers=0,
      rebuild=False,  # True: build again even if up to date
      # e.g. 'DataflowRunner' and '--project=P --region=R ...' (README: Beam).
      beam_runner='', beam_options=''))

  c.seed = 0
  c.mesh = ml_collections.ConfigDict(dict(devices=0, fsdp=1))
  # worker_count=0 reads in the training process: on the H100 host it gave
  # 1147 clips/s against 960 with 8 workers (README "Benchmarks"), twice what
  # the tokenizer step consumes.
  c.input = ml_collections.ConfigDict(dict(worker_count=0, flip=True))

  c.tokenizer = ml_collections.ConfigDict(dict(
      channels=(64, 128, 256), num_res_blocks=2, patch=2, spatial=8,
      temporal=4, temporal_kernel=3, norm='group', quantizer='fsq',
      fsq_levels=(8, 8, 8, 6, 5), vq_codes=8192, vq_dim=32, vq_commitment=0.25,
      # conv '3d' | '2+1d', layout 'uniform' | 'latent': README, "Stage 1"
      # (2+1d/latent trains 10-19x faster on CPU; not yet measured on GPU).
      conv='3d', layout='uniform',
      mixed_precision=True,
      remat='none',  # none | dots | full: activation checkpointing per block
      train_frames=8,  # two latent steps of each clip per step
      batch_size=64, steps=100_000, lr=2e-4, final_lr_ratio=0.1,
      warmup_steps=2000, weight_decay=0.0, b1=0.9, b2=0.99, grad_clip=1.0,
      ema=0.999,
      loss=dict(recon='l1', recon_weight=1.0,
                # Set perceptual_weight > 0 with perceptual_weights=PATH.npz
                # (see mirai_jax/models/perceptual.py); nothing is downloaded.
                perceptual_weight=0.0, perceptual_weights='',
                adversarial_weight=0.1, adversarial_start=30_000,
                disc_channels=(64, 128, 256), disc_lr=1e-4, lecam_weight=0.001),
      log_every=100, checkpoint_every=2000, keep=3,
      eval_every=5000, eval_batches=16, eval_batch_size=32))

  c.transformer = ml_collections.ConfigDict(dict(
      task='continue', frames=8, context=4,
      width=768, depth=12, heads=12, mlp_ratio=4, dropout=0.1,
      audio_channels=256, audio_layers=3, audio_dropout=0.2,
      mixed_precision=True,
      # auto: cuDNN flash attention on NVIDIA GPUs, Pallas on TPUs, blockwise
      # (flash attention in plain JAX) elsewhere (models/attention.py).
      attention='auto',
      remat='dots',  # none | dots | full: activation checkpointing per block
      loss_chunk=0,  # predicted tokens per loss chunk; 0 = 512 MB of logits
      batch_size=64, steps=200_000, lr=3e-4, final_lr_ratio=0.05,
      warmup_steps=5000, weight_decay=0.05, b1=0.9, b2=0.95, grad_clip=1.0,
      ema=0.999, log_every=100, checkpoint_every=2000, keep=3,
      eval_every=5000, eval_batches=16, eval_batch_size=32))

  c.sample = ml_collections.ConfigDict(dict(
      temperature=1.0, top_k=100, top_p=1.0, seed=0))
  c.evaluate = ml_collections.ConfigDict(dict(
      split='test', batch_size=16, max_clips=512, paste='residual'))
  c.predict = ml_collections.ConfigDict(dict(
      video='', start=60.0, windows=1, out='', scale=2))
  c.preview = ml_collections.ConfigDict(dict(
      split='train', num_clips=8, cols=4, scale=1))
  return c
