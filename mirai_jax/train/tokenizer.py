"""Stage 1: train the video tokenizer (`--mode=tokenizer`).

Reads top to bottom: mesh, input pipeline, model and optimiser, state and
shardings, the update step, checkpoint restore, evaluation, the train loop.
Everything lands in <workdir>/tokenizer: checkpoints/, metrics.jsonl, tb/,
eval.json.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
from typing import Any, Callable

from absl import logging
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
from mirai_jax.models import discriminators
from mirai_jax.models import from_config
from mirai_jax.models import perceptual
from mirai_jax.models import tokenizer as tokenizer_lib
from mirai_jax.train import loop
from mirai_jax.train import metrics as metrics_lib
from mirai_jax.train import optim


@flax.struct.dataclass
class State:
  step: jax.Array
  params: Any
  opt_state: Any
  ema_params: Any
  model_state: Any  # the VQ codebook ({} for FSQ)
  disc_params: Any  # {} without the adversarial loss
  disc_opt_state: Any
  lecam_ema: jax.Array  # EMAs of the real and fake logits
  nonfinite: jax.Array  # steps whose loss or gradients were not finite


@dataclasses.dataclass
class Parts:
  model: tokenizer_lib.Tokenizer
  tx: optax.GradientTransformation
  disc: discriminators.PatchDiscriminator
  disc_tx: optax.GradientTransformation
  net: Any  # perceptual network, or None
  adversarial: bool
  make_state: Callable[[jax.Array], State]


def setup(config, spec: dict, frames: int) -> Parts:
  """Model, optimisers and the state initialiser (also used to restore)."""
  cfg = config.tokenizer
  model = from_config.tokenizer(config)
  tx = optim.optimizer(cfg)
  adversarial = cfg.loss.adversarial_weight > 0
  disc = discriminators.PatchDiscriminator(tuple(cfg.loss.disc_channels))
  disc_tx = optax.adam(cfg.loss.disc_lr, b1=0.5, b2=0.9)
  net = (perceptual.load(cfg.loss.perceptual_weights)
         if cfg.loss.perceptual_weight > 0 else None)
  sample = jnp.zeros((1, frames, spec['height'], spec['width'], 3))

  def make_state(rng):
    r_model, r_disc = jax.random.split(rng)
    variables = model.init({'params': r_model}, sample)
    params = variables['params']
    disc_params = disc.init(r_disc, sample)['params'] if adversarial else {}
    return State(
        step=jnp.zeros((), jnp.int32), params=params,
        opt_state=tx.init(params), ema_params=params,
        model_state={k: v for k, v in variables.items() if k != 'params'},
        disc_params=disc_params,
        disc_opt_state=disc_tx.init(disc_params) if adversarial else {},
        lecam_ema=jnp.zeros((2,)), nonfinite=jnp.zeros((), jnp.int32))

  return Parts(model, tx, disc, disc_tx, net, adversarial, make_state)


def make_update(cfg, parts: Parts, frames: int, seed: int):
  """The pure update step: (state, batch) -> (state, metrics).

  A step whose loss or gradients are not finite leaves the state as it was
  (apart from `step` and the `nonfinite` count the train loop checks).
  """
  model, tx, disc, disc_tx, net = (parts.model, parts.tx, parts.disc,
                                   parts.disc_tx, parts.net)
  adversarial = parts.adversarial
  base_rng = jax.random.key(seed)

  def update(state: State, batch: dict) -> tuple[State, dict]:
    rng = jax.random.fold_in(base_rng, state.step)
    r_crop, r_restart = jax.random.split(rng)
    video = tokenizer_lib.to_float(batch['video'])
    if frames < video.shape[1]:  # a random window of the clip, same for all
      start = jax.random.randint(r_crop, (), 0, video.shape[1] - frames + 1)
      start = start // cfg.temporal * cfg.temporal
      video = jax.lax.dynamic_slice_in_dim(video, start, frames, axis=1)
    adv_on = (state.step >= cfg.loss.adversarial_start).astype(jnp.float32)
    mutable = list(state.model_state) or False

    def loss_fn(params):
      out = model.apply({'params': params, **state.model_state}, video,
                        train=True, mutable=mutable, rngs={'restart': r_restart})
      (recon, _, aux), new_model_state = out if mutable else (out, {})
      err = recon - video
      rec = jnp.mean(jnp.abs(err)) if cfg.loss.recon == 'l1' else jnp.mean(err ** 2)
      total = cfg.loss.recon_weight * rec + aux['commitment']
      terms = dict(recon=rec, commitment=aux['commitment'],
                   perplexity=aux['perplexity'], usage=aux['usage'])
      if net is not None:
        flat = lambda v: tokenizer_lib.to_unit(v).reshape(-1, *v.shape[2:])
        terms['perceptual'] = perceptual.distance(net, flat(recon), flat(video))
        total += cfg.loss.perceptual_weight * terms['perceptual']
      if adversarial:
        terms['g_adv'] = discriminators.hinge_g_loss(
            disc.apply({'params': state.disc_params}, recon))
        total += adv_on * cfg.loss.adversarial_weight * terms['g_adv']
      return total, (recon, new_model_state, terms)

    (loss, (recon, new_model_state, terms)), grads = jax.value_and_grad(
        loss_fn, has_aux=True)(state.params)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    new = state.replace(params=params, opt_state=opt_state,
                        ema_params=optim.ema(state.ema_params, params, cfg.ema),
                        model_state=new_model_state or state.model_state)
    grad_norm = optax.tree.norm(grads)
    ok = jnp.isfinite(loss) & jnp.isfinite(grad_norm)
    if adversarial:
      fake = jax.lax.stop_gradient(recon)

      def d_loss_fn(dp):
        real_l = disc.apply({'params': dp}, video)
        fake_l = disc.apply({'params': dp}, fake)
        d = discriminators.hinge_d_loss(real_l, fake_l)
        reg = discriminators.lecam(real_l, fake_l, *state.lecam_ema)
        return d + cfg.loss.lecam_weight * reg, (jnp.mean(real_l), jnp.mean(fake_l), d)

      (_, (mr, mf, d)), dgrads = jax.value_and_grad(d_loss_fn, has_aux=True)(
          state.disc_params)
      dupd, dopt = disc_tx.update(dgrads, state.disc_opt_state, state.disc_params)
      new = new.replace(
          disc_params=jax.tree.map(lambda p, u: p + adv_on * u,
                                   state.disc_params, dupd),
          disc_opt_state=dopt,
          lecam_ema=0.99 * state.lecam_ema + 0.01 * jnp.stack([mr, mf]))
      terms['d_loss'] = d
      ok &= jnp.isfinite(d)
    new = optim.keep_if_finite(ok, new, state)
    new = new.replace(step=state.step + 1,
                      nonfinite=state.nonfinite + (~ok).astype(jnp.int32))
    return new, dict(loss=loss, grad_norm=grad_norm,
                     lr=optim.schedule(cfg)(state.step), **terms)


  return update


def train_and_evaluate(config, workdir: str) -> dict:
  cfg = config.tokenizer
  out = workdir_lib.stage_dir(workdir, 'tokenizer')
  builder = workdir_lib.open_dataset(config, workdir, ('tokenizer',))
  data_identity = identity.of_builder(builder)
  spec = builder.info.metadata['clip_spec']
  frames = cfg.train_frames or spec['frames']
  if frames % cfg.temporal or spec['frames'] % cfg.temporal:
    raise ValueError(f'config.tokenizer.train_frames={frames} and the clip '
                     f"length {spec['frames']} must be multiples of "
                     f'tokenizer.temporal={cfg.temporal}')

  # ---------------------------------------------------------------- Mesh
  mesh = workdir_lib.make_mesh(config)
  if cfg.batch_size % mesh.size:
    raise ValueError(f'config.tokenizer.batch_size={cfg.batch_size} does not '
                     f'divide over {mesh.size} devices')

  # ------------------------------------------------------ Input pipeline
  train_batches = lambda start: iter(pipeline.make_loader(
      builder, 'train', global_batch_size=cfg.batch_size, seed=config.seed,
      worker_count=config.input.worker_count, flip=config.input.flip,
      start=start))

  # ---------------------------------------------- Model & optimiser
  parts = setup(config, spec, frames)
  model = parts.model

  # ------------------------------------ Shard, then restore or initialise
  state, start, ckpt, state_sharding = loop.start(
      'tokenizer', config, workdir, parts.make_state, mesh, data_identity)

  # -------------------------------------------------------- Update step
  update = loop.jit_update(make_update(cfg, parts, frames, config.seed),
                           state_sharding, mesh, xla_options.convolutions())
  writer = metrics_lib.Writer(out, cfg.steps, 'tokenizer')
  n_params = sum(x.size for x in jax.tree.leaves(state.params))
  logging.info('tokenizer: %.2fM parameters, codebook %d, mesh %s, start step %d',
               n_params / 1e6, model.codebook_size, dict(mesh.shape), start)

  # ------------------------------------------------------------- Evals
  def evaluate(step, state):
    result = evaluate_tokenizer(config, model, builder, mesh,
                                state.ema_params, state.model_state)
    writer.scalars(step, {f'eval/{k}': v for k, v in result.items()
                          if not isinstance(v, (list, np.ndarray))})
    if 'image' in result:
      writer.image(step, 'eval/reconstruction', result.pop('image'))
    result = dict(step=step, **result)
    if jax.process_index() == 0:
      storage.write_text(os.path.join(out, 'eval.json'),
                         json.dumps(result, indent=1))
    print(f"tokenizer eval step {step}: PSNR {result['psnr']:.2f} dB, SSIM "
          f"{result['ssim']:.4f}, codebook usage {result['codebook_usage']:.3f}, "
          f"perplexity {result['perplexity']:.1f}", flush=True)
    return result

  # -------------------------------------------------------- Train loop
  return loop.run('tokenizer', config, state=state, start=start,
                  update=update, data_iter=train_batches(start), mesh=mesh,
                  ckpt=ckpt, writer=writer, evaluate=evaluate,
                  show=('loss', 'recon', 'perplexity'), dataset=data_identity)


def evaluate_tokenizer(config, model, builder, mesh, params, model_state,
                       split: str = 'validation') -> dict:
  """PSNR/SSIM per frame position (dm-pix) and codebook use on `split`."""
  cfg = config.tokenizer
  batch_size = mesh_lib.round_batch(cfg.eval_batch_size, mesh)
  loader = pipeline.make_loader(builder, split, global_batch_size=batch_size,
                                shuffle=False, num_epochs=1)
  recon_fn = jax.jit(lambda p, ms, v: model.apply({'params': p, **ms},
                                                  tokenizer_lib.to_float(v)),
                     compiler_options=xla_options.convolutions())
  psnr, ssim, counts, image = [], [], None, None
  for local in itertools.islice(loader, cfg.eval_batches):
    batch = pipeline.to_global(local, mesh)
    recon, idx, _ = recon_fn(params, model_state, batch['video'])
    real = batch['video'].astype(jnp.float32) / 255.0
    fake = tokenizer_lib.to_unit(recon)
    b, t = real.shape[:2]
    flat = lambda v: v.reshape(b * t, *v.shape[2:])
    psnr.append(np.asarray(pix.psnr(flat(real), flat(fake))).reshape(b, t))
    ssim.append(np.asarray(pix.ssim(flat(real), flat(fake))).reshape(b, t))
    c = np.bincount(np.asarray(idx).reshape(-1), minlength=model.codebook_size)
    counts = c if counts is None else counts + c
    if image is None:  # the first two clips: true frames above their decoding
      n = min(t, 8)
      both = np.stack([np.asarray(real[:2, :n]), np.asarray(fake[:2, :n])], 1)
      image = metrics_lib.strip(
          (both.reshape(-1, *both.shape[2:]) * 255).round().astype(np.uint8))
  if not psnr:
    raise ValueError(f'split {split!r} has fewer clips than one eval batch '
                     f'({batch_size}); lower config.tokenizer.eval_batch_size')
  psnr, ssim = np.concatenate(psnr), np.concatenate(ssim)
  p = counts / counts.sum()
  return dict(
      psnr=float(psnr.mean()), ssim=float(ssim.mean()),
      psnr_per_frame=[round(float(x), 3) for x in psnr.mean(0)],
      ssim_per_frame=[round(float(x), 4) for x in ssim.mean(0)],
      codebook_usage=float((counts > 0).mean()),
      perplexity=float(np.exp(-np.sum(p[p > 0] * np.log(p[p > 0])))),
      clips=int(psnr.shape[0]), image=image)
