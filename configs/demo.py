r"""Demo on built-in synthetic cartoon episodes; runs on 2 CPU cores.

  python -m mirai_jax.main --config=configs/demo.py --workdir=/tmp/mirai_demo
  python -m mirai_jax.main --config=configs/demo.py:long --workdir=/tmp/mirai_long
  python -m mirai_jax.main --config=configs/demo.py:wide --workdir=/tmp/mirai_wide

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

Run time and results: README, "Set-up: two commands" and "What the demo
shows". The transformer trains at lr 2e-3 without dropout, evaluate decodes
the expected latents (sample.decode='mean') and pastes changes over 0.2
(evaluate.paste_threshold), all three chosen on the validation split.

'long' (120 episodes, tokenizer and transformer 2000 steps each; the
transformer, sampling and paste of mirai_jax/defaults.py): run time and
results in the README, "What the demo shows".

'wide' (72 episodes rendered at 16:9 with rolling hills, as clips of
64x112, anime_clips 64x112_t20): one transformer for three jobs,
transformer.tasks = continue:2,interpolate:1,outpaint:1 (continuing, filling
in between two keyframes, widening the 4:3 centre to 16:9), 800 steps with
the demo's learning rate and sampling, the paste's dead zone chosen for
each job on its validation split, evaluated on each job with its
baselines. Run time and results in the README, "What the demo shows".

Run one stage with --mode=transformer; change any field with e.g.
--config.transformer.steps=1000.
"""

from mirai_jax import defaults


def get_config(arg: str = ''):
  """arg '' = the demo; 'long' = the same pipeline trained longer (< 1 h);
  'wide' = 16:9 clips and one model for three jobs."""
  if arg not in ('', 'long', 'wide'):
    raise ValueError("configs/demo.py takes '', 'long' or 'wide' after a "
                     f'colon, got {arg!r}')
  # Many short episodes: the variety of characters and colours, not the
  # length, is what the models generalise from.
  c = defaults.run(data=defaults.data(synthetic=dict(num_episodes=36)))
  if arg in ('', 'wide'):
    # Chosen on the demo's validation split (README, "What the demo
    # shows"): 400 steps learn more at twice the learning rate and without
    # dropout; the frames are the expected drawings where the model is
    # unsure, and the tokenizer's error around a changed token is not
    # pasted. The wide demo takes the same learning rate and sampling, not
    # chosen again for its mix; its dead zone is its own (below).
    c.transformer.update(lr=2e-3, dropout=0.0)
    c.sample.decode = 'mean'
    c.evaluate.paste_threshold = 0.2
  if arg == 'long':
    # 4x the episodes: at 30 the transformer overfits after ~500 steps.
    c.data.synthetic.num_episodes = 120
    c.tokenizer.update(steps=2000, eval_every=500)
    c.transformer.update(steps=2000, eval_every=500, checkpoint_every=500)
  if arg == 'wide':
    c.data.builder_config = '64x112_t20'
    c.transformer.tasks = 'continue:2,interpolate:1,outpaint:1'
    # Three jobs share the steps: at 400 each job had too few, and at 800
    # on 36 episodes the validation loss rose after step 600.
    c.data.synthetic.num_episodes = 72
    # Rendered at 16:9 with rolling hills: flat sides were edge
    # replication's exactly; a hill's curve continues into them. (Scenery
    # and pans gave the sides more to learn and cost the other jobs:
    # README, "What the demo shows".)
    c.data.synthetic.update(width=426, hills=True)
    # Evaluations only report (none changes the weights): fewer of them,
    # and sampling 8 clips at a time (greedy, so the same frames; 22 % less
    # time a clip than 16 on 2 CPU cores), keep the run under an hour.
    c.tokenizer.eval_every = 500
    c.transformer.update(steps=800, eval_every=400)
    c.evaluate.batch_size = 8
    # Each job's dead zone, the best of 0 to 0.2 on its validation split
    # (bench/decode_sweep.py and the rollout; README, "What the demo
    # shows"): one for all cost the in-betweens and the sides what it gave
    # the continuation and the rollout, whose soft changes a wide dead
    # zone drops.
    c.evaluate.paste_threshold = 0.02
    c.evaluate.paste_threshold_by_job = 'interpolate:0.15,outpaint:0.1,rollout:0'
  return c
