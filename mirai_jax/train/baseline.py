"""The pixel baselines (`--mode=pix2pix`, `--mode=multiscale`): next-frame
predictors trained on the same anime_clips splits as the tokenizer, with the
same machinery (mesh, Orbax, exact resume, metrics, SIGTERM).

Each step takes, from every clip, a random run of `inputs` context frames and
the frame after it; the generator predicts that frame (teacher forcing, as
both papers train), the discriminator (when adversarial_weight > 0) judges
(context, frame) pairs. Evaluation rolls the generator forward over the
transformer's horizon from the first context frames of validation clips,
feeding its own frames back, as evaluate does on the test split.
Everything lands in <workdir>/<name>: checkpoints/, metrics.jsonl, tb/ (with
true vs predicted frames at each evaluation), eval.json.

  python -m mirai_jax.main --config=configs/demo.py --mode=pix2pix,multiscale
"""

from __future__ import annotations

import itertools
import json
import os
from typing import Any

import dm_pix as pix
import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax

from mirai_jax import mesh as mesh_lib
from mirai_jax import storage
from mirai_jax import workdir as workdir_lib
from mirai_jax import xla_options
from mirai_jax.data import identity
from mirai_jax.data import pipeline
from mirai_jax.models import from_config
from mirai_jax.models import multiscale
from mirai_jax.models import next_frame
from mirai_jax.train import loop
from mirai_jax.train import metrics as metrics_lib
from mirai_jax.train import optim


@flax.struct.dataclass
class State:
  step: jax.Array
  params: Any
  opt_state: Any
  ema_params: Any
  disc_params: Any  # {} without the adversarial loss
  disc_opt_state: Any
  nonfinite: jax.Array  # steps whose loss or gradients were not finite


def _bce(logits, real: bool):
  """The original GAN loss both papers use (non-saturating for G)."""
  logits = jnp.asarray(logits, jnp.float32)
  labels = jnp.full_like(logits, 1.0 if real else 0.0)
  return jnp.mean(optax.sigmoid_binary_cross_entropy(logits, labels))


def _as_list(x):
  return x if isinstance(x, list) else [x]


def make_losses(name: str, cfg, gen, disc):
  """(generator loss, discriminator logits) of baseline `name`.

  g_loss(params, disc_params, ctx, target, rng) -> (loss, (fake, real,
  terms)), where `fake` and `real` are what the discriminator judges (every
  scale for multiscale); d_logits(disc_params, ctx, frames) -> list of
  logits.
  """
  adversarial = disc is not None

  def d_logits(dp, ctx, frames):
    return _as_list(disc.apply({'params': dp}, ctx, frames))

  def g_loss(params, dp, ctx, target, rng):
    if name == 'pix2pix':
      fake = gen.apply({'params': params}, ctx, train=True,
                       rngs={'dropout': rng})
      terms = dict(l1=jnp.mean(jnp.abs(fake - target)))
      total = cfg.l1_weight * terms['l1']
      truth = target
    else:  # multiscale: every scale is supervised, as in the paper
      fake = gen.apply({'params': params}, ctx, all_scales=True)
      truth = multiscale.pyramid(multiscale.pad(target, cfg.scales),
                                 cfg.scales)
      p = 2 if cfg.recon == 'l2' else 1
      terms = dict(
          recon=sum(jnp.mean(jnp.abs(f - t) ** p) for f, t in zip(fake, truth)),
          gdl=sum(multiscale.gdl(t, f, cfg.gdl_alpha)
                  for f, t in zip(fake, truth)))
      total = cfg.recon_weight * terms['recon'] + cfg.gdl_weight * terms['gdl']
    if adversarial:
      terms['g_adv'] = sum(_bce(l, True) for l in d_logits(dp, ctx, fake))
      total += cfg.adversarial_weight * terms['g_adv']
    return total, (fake, truth, terms)

  return g_loss, d_logits


def make_update(name: str, cfg, gen, disc, tx, disc_tx, inputs: int,
                seed: int):
  """The pure update step: (state, batch) -> (state, metrics); a step whose
  loss or gradients are not finite changes nothing but the counters."""
  g_loss, d_logits = make_losses(name, cfg, gen, disc)
  base_rng = jax.random.key(seed)

  def update(state: State, batch: dict) -> tuple[State, dict]:
    rng = jax.random.fold_in(base_rng, state.step)
    r_start, r_drop = jax.random.split(rng)
    video = batch['video']
    # Each clip its own run of inputs + 1 frames: more variety per step.
    starts = jax.random.randint(r_start, (video.shape[0],), 0,
                                video.shape[1] - inputs)
    runs = jax.vmap(lambda v, s: jax.lax.dynamic_slice_in_dim(
        v, s, inputs + 1, 0))(video, starts)
    runs = next_frame.to_signed(runs)
    ctx, target = runs[:, :inputs], runs[:, inputs]

    (loss, (fake, real, terms)), grads = jax.value_and_grad(
        g_loss, has_aux=True)(
        state.params, state.disc_params, ctx, target, r_drop)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    new = state.replace(params=params, opt_state=opt_state,
                        ema_params=optim.ema(state.ema_params, params, cfg.ema))
    grad_norm = optax.tree.norm(grads)
    ok = jnp.isfinite(loss) & jnp.isfinite(grad_norm)
    if disc is not None:
      fake = jax.tree.map(jax.lax.stop_gradient, fake)

      def d_loss(dp):
        return (sum(_bce(l, True) for l in d_logits(dp, ctx, real))
                + sum(_bce(l, False) for l in d_logits(dp, ctx, fake)))

      d, dgrads = jax.value_and_grad(d_loss)(state.disc_params)
      dupd, dopt = disc_tx.update(dgrads, state.disc_opt_state,
                                  state.disc_params)
      new = new.replace(disc_params=optax.apply_updates(state.disc_params,
                                                        dupd),
                        disc_opt_state=dopt)
      terms['d_loss'] = d
      ok &= jnp.isfinite(d)
    new = optim.keep_if_finite(ok, new, state)
    new = new.replace(step=state.step + 1,
                      nonfinite=state.nonfinite + (~ok).astype(jnp.int32))
    return new, dict(loss=loss, grad_norm=grad_norm,
                     lr=optim.schedule(cfg)(state.step), **terms)

  return update


def predictor(gen, inputs: int):
  """(params, uint8 context (B, >= inputs, H, W, 3), n) -> the n frames
  after it in [0, 1], the generator's own frames fed back."""
  return jax.jit(
      lambda params, context, n: next_frame.continue_frames(
          lambda c: gen.apply({'params': params}, c), context, inputs, n),
      static_argnums=2, compiler_options=xla_options.convolutions())


def train_and_evaluate(name: str, config, workdir: str) -> dict:
  cfg = config[name]
  out = workdir_lib.stage_dir(workdir, name)
  builder = workdir_lib.open_dataset(config, workdir, (name,))
  data_identity = identity.of_builder(builder)
  spec = builder.info.metadata['clip_spec']
  inputs = from_config.baseline_inputs(config, name)
  context, frames = from_config.window_frames(config)
  if frames > spec['frames']:
    raise ValueError(f"the transformer's window of {frames} frames is longer "
                     f"than the dataset's {spec['frames']}-frame clips")

  # ---------------------------------------------------------------- Mesh
  mesh = workdir_lib.make_mesh(config)
  if cfg.batch_size % mesh.size:
    raise ValueError(f'config.{name}.batch_size={cfg.batch_size} does not '
                     f'divide over {mesh.size} devices')

  # ------------------------------------------------------ Input pipeline
  train_batches = lambda start: iter(pipeline.make_loader(
      builder, 'train', global_batch_size=cfg.batch_size, seed=config.seed,
      worker_count=config.input.worker_count, flip=config.input.flip,
      start=start))

  # ---------------------------------------------- Model & optimiser
  gen, disc = from_config.baseline(config, name)
  tx = optim.optimizer(cfg)
  disc_tx = optax.adam(cfg.disc_lr, b1=cfg.b1, b2=cfg.b2)
  ctx0 = jnp.zeros((1, inputs, spec['height'], spec['width'], 3))

  def make_state(rng):
    r_gen, r_disc = jax.random.split(rng)
    params = gen.init(r_gen, ctx0)['params']
    disc_params = {}
    if disc is not None:
      fake = gen.apply({'params': params}, ctx0,
                       **({'all_scales': True} if name == 'multiscale' else {}))
      disc_params = disc.init(r_disc, ctx0, fake)['params']
    return State(step=jnp.zeros((), jnp.int32), params=params,
                 opt_state=tx.init(params), ema_params=params,
                 disc_params=disc_params,
                 disc_opt_state=disc_tx.init(disc_params) if disc else {},
                 nonfinite=jnp.zeros((), jnp.int32))

  # ------------------------------------ Shard, then restore or initialise
  state, start, ckpt, state_sharding = loop.start(
      name, config, workdir, make_state, mesh, data_identity)

  # -------------------------------------------------------- Update step
  update = loop.jit_update(
      make_update(name, cfg, gen, disc, tx, disc_tx, inputs, config.seed),
      state_sharding, mesh, xla_options.convolutions())
  writer = metrics_lib.Writer(out, cfg.steps, name)
  if jax.process_index() == 0:
    n_params = sum(x.size for x in jax.tree.leaves(state.params))
    print(f'{name}: {n_params / 1e6:.2f}M parameters, {inputs} context '
          f'frame(s) -> the next, '
          f'{"adversarial" if disc is not None else "no discriminator"}, '
          f'mesh {dict(mesh.shape)}, start step {start}', flush=True)

  # ------------------------------------------------------------- Evals
  roll = predictor(gen, inputs)

  def evaluate(step, state):
    result, image = evaluate_baseline(name, cfg, roll, state.ema_params, builder,
                                      mesh, context, frames)
    writer.scalars(step, {f'eval/{k}': v for k, v in result.items()
                          if not isinstance(v, list)})
    writer.image(step, 'eval/truth_vs_predicted', image)
    result = dict(step=step, **result)
    if jax.process_index() == 0:
      storage.write_text(os.path.join(out, 'eval.json'),
                         json.dumps(result, indent=1))
    print(f"{name} eval step {step}: PSNR {result['psnr']:.2f} dB, SSIM "
          f"{result['ssim']:.4f} over {frames - context} frames fed back",
          flush=True)
    return result

  # -------------------------------------------------------- Train loop
  return loop.run(name, config, state=state, start=start, update=update,
                  data_iter=train_batches(start), mesh=mesh, ckpt=ckpt,
                  writer=writer, evaluate=evaluate, show=('loss',),
                  dataset=data_identity)


def evaluate_baseline(name: str, cfg, roll, params, builder, mesh,
                      context: int, frames: int, split: str = 'validation'):
  """(PSNR/SSIM per predicted frame on `split`, an image of the first two
  clips: per clip a row of true frames above a row of predicted ones)."""
  batch_size = mesh_lib.round_batch(cfg.eval_batch_size, mesh)
  loader = pipeline.make_loader(builder, split, global_batch_size=batch_size,
                                shuffle=False, num_epochs=1)
  psnr, ssim, image = [], [], None
  for local in itertools.islice(loader, cfg.eval_batches):
    video = pipeline.to_global(local, mesh)['video'][:, :frames]
    fake = roll(params, video[:, :context], frames - context)
    real = video[:, context:].astype(jnp.float32) / 255.0
    b, t = real.shape[:2]
    flat = lambda v: v.reshape(b * t, *v.shape[2:])
    psnr.append(np.asarray(pix.psnr(flat(real), flat(fake))).reshape(b, t))
    ssim.append(np.asarray(pix.ssim(flat(real), flat(fake))).reshape(b, t))
    if image is None:  # the same first clips at every evaluation
      both = np.stack([np.asarray(real[:2]), np.asarray(fake[:2])], 1)
      image = metrics_lib.strip(
          (both.reshape(-1, *both.shape[2:]) * 255).round().astype(np.uint8))
  if not psnr:
    raise ValueError(f'split {split!r} has fewer clips than one eval batch '
                     f'({batch_size}); lower config.{name}.eval_batch_size')
  psnr, ssim = np.concatenate(psnr), np.concatenate(ssim)
  return dict(psnr=float(psnr.mean()), ssim=float(ssim.mean()),
              psnr_per_frame=[round(float(x), 3) for x in psnr.mean(0)],
              clips=int(psnr.shape[0])), image
