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

Baselines and the report of every method (README "Baselines and the
report"):
  python -m mirai_jax.main --config=configs/kny.py --mode=report

Stages: data (128x128 clips of 32 frames at the source rate, cut at scene
changes), tokenizer (x8 space, x4 time: 8 latent steps of 16x16 tokens per
clip, FSQ 15360 codes), tokenize, transformer (12 layers, width 768, 121.7M
parameters; 4 known steps = 16 frames, 4 predicted = 16 frames, 1024 tokens
generated per continuation), evaluate (test split) and predict.

Run time on one H100 80GB (bf16, measured with `bash bench/gpu_check.sh`):
README, "Kimetsu no Yaiba" and "Benchmarks". Memory per step and the
largest batch: `python bench/memory.py --config=configs/kny.py`.
Expected result: the audio model beats copy-last-frame and the mismatched-audio
model on the test split (see --mode=evaluate); not yet run on episodes.
"""

from mirai_jax import defaults


def get_config():
  return defaults.run(
      stages='data,tokenizer,tokenize,transformer,evaluate,predict',
      workdir='~/mirai_jax/kny',  # used when --workdir is not given
      data=defaults.data(builder_config='128x128_t32'),
      tokenizer=defaults.tokenizer(
          channels=(64, 128, 256), num_res_blocks=2, temporal=4,
          temporal_kernel=3, norm='group', fsq_levels=(8, 8, 8, 6, 5),
          vq_codes=8192,
          # conv and layout stay '3d' and 'uniform': '2+1d' and 'latent'
          # train faster on CPU (README, "Stage 1"), not yet measured on GPU.
          mixed_precision=True,
          train_frames=8,  # two latent steps of each clip per step
          batch_size=64, steps=100_000, lr=2e-4, final_lr_ratio=0.1,
          warmup_steps=2000, ema=0.999,
          loss=dict(adversarial_weight=0.1, adversarial_start=30_000,
                    disc_channels=(64, 128, 256)),
          log_every=100, checkpoint_every=2000, eval_every=5000,
          eval_batches=16, eval_batch_size=32),
      transformer=defaults.transformer(
          frames=8, context=4, width=768, depth=12, heads=12,
          audio_channels=256, audio_layers=3, mixed_precision=True,
          remat='dots_attention', batch_size=64, steps=200_000, lr=3e-4,
          warmup_steps=5000, weight_decay=0.05, ema=0.999, log_every=100,
          checkpoint_every=2000, eval_every=5000, eval_batches=16,
          eval_batch_size=32),
      sample=defaults.sample(temperature=1.0, top_k=100),
      evaluate=defaults.evaluate(max_clips=512),
      predict=defaults.predict(start=60.0, scale=2),
      preview=defaults.preview(scale=1),
      # The pixel baselines (--mode=pix2pix, --mode=multiscale, or all of
      # it with --mode=report): the papers' sizes, reading the last 4 of the
      # 16 context frames (the paper's 4 for Mathieu et al.).
      pix2pix=defaults.pix2pix(
          inputs=4, channels=(64, 128, 256, 512, 512),
          disc_channels=(64, 128, 256),
          batch_size=32, steps=100_000, lr=2e-4, final_lr_ratio=0.1,
          warmup_steps=1000, log_every=100, checkpoint_every=2000,
          eval_every=5000, eval_batches=8, eval_batch_size=32),
      multiscale=defaults.multiscale(
          inputs=4, channels=(128, 256, 128), disc_channels=(64, 128, 128),
          disc_hidden=512, batch_size=32, steps=100_000, lr=2e-4,
          final_lr_ratio=0.1, warmup_steps=1000, log_every=100,
          checkpoint_every=2000, eval_every=5000, eval_batches=8,
          eval_batch_size=32))
