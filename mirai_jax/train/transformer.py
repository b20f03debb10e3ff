"""Stage 3: train the audio-conditioned transformer (`--mode=transformer`).

Reads the token records of `tokenize` (never pixels). Each step takes a
random window of `transformer.frames` latent steps from every clip, reads it
in the task's order (known tokens first) and trains next-token prediction
with the loss on the unknown tokens only. Audio is dropped for a fraction of
the clips so that one model also runs without sound.

Reads top to bottom: mesh, input, model and optimiser, shardings, update
step, checkpoint restore, validation, train loop. Everything lands in
<workdir>/transformer: checkpoints/, metrics.jsonl, tb/, validation.json.
"""

from __future__ import annotations

import itertools
import json
import os
from typing import Any, Optional

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax

from mirai_jax import sample
from mirai_jax import storage
from mirai_jax import tasks
from mirai_jax import tokenize
from mirai_jax.data import dataset
from mirai_jax.data import identity
from mirai_jax.data import pipeline
from mirai_jax.data import splits
from mirai_jax.data import tokens as tokens_lib
from mirai_jax.models import attention as attention_lib
from mirai_jax.models import transformer as transformer_lib
from mirai_jax.train import checkpoint
from mirai_jax.train import loop
from mirai_jax.train import mesh as mesh_lib
from mirai_jax.train import metrics as metrics_lib
from mirai_jax.train import optim


@flax.struct.dataclass
class State:
  step: jax.Array
  params: Any
  opt_state: Any
  ema_params: Any
  nonfinite: jax.Array  # steps whose loss or gradients were not finite


def workdir_of(workdir: str) -> str:
  return os.path.join(workdir, 'transformer')


def meta_from_config(config) -> dict:
  """The token-record description `tokenize` would write for this config
  (grid, codebook, clip spec), for benchmarks that need no dataset."""
  import dataclasses  # pylint: disable=g-import-not-at-top
  from tfds_builders.anime_clips import CONFIGS  # pylint: disable=g-import-not-at-top
  spec = {c.name: c.clip for c in CONFIGS}[config.data.builder_config]
  t = config.tokenizer
  codes = (int(np.prod(t.fsq_levels)) if t.quantizer == 'fsq' else t.vq_codes)
  rate = 24000 / 1001
  return dict(grid=[spec.frames // t.temporal, spec.height // t.spatial,
                    spec.width // t.spatial], codebook_size=codes,
              clip_spec=dataclasses.asdict(spec), temporal=t.temporal,
              audio_len=int(np.ceil(spec.frames * spec.sample_rate / rate)))


def make_model(config, meta: dict) -> transformer_lib.Transformer:
  cfg = config.transformer
  _, h, w = meta['grid']
  dtype = jnp.bfloat16 if cfg.mixed_precision else jnp.float32
  return transformer_lib.Transformer(
      codebook_size=meta['codebook_size'], grid=(cfg.frames, h, w),
      width=cfg.width, depth=cfg.depth, heads=cfg.heads,
      mlp_ratio=cfg.mlp_ratio, dropout=cfg.dropout,
      audio_channels=cfg.audio_channels, audio_layers=cfg.audio_layers,
      dtype=dtype, remat=cfg.get('remat', 'none'),
      attention=attention_lib.resolve(
          cfg.get('attention', 'auto'), dtype=dtype,
          head_dim=cfg.width // cfg.heads, length=cfg.frames * h * w))


def make_order(config, meta: dict) -> tasks.Order:
  cfg = config.transformer
  _, h, w = meta['grid']
  return tasks.make_order(cfg.task, (cfg.frames, h, w), cfg.context)


def check(config, meta: dict) -> None:
  """Config errors that would otherwise surface deep inside a jit trace."""
  cfg = config.transformer
  clip_steps = meta['grid'][0]
  if not 0 < cfg.frames <= clip_steps:
    raise ValueError(f'config.transformer.frames={cfg.frames} must be 1..'
                     f'{clip_steps}, the latent steps of a tokenized clip')
  if cfg.width % cfg.heads:
    raise ValueError(f'config.transformer.width={cfg.width} must be a multiple '
                     f'of transformer.heads={cfg.heads}')


def audio_features(model, params, batch, meta, use_audio):
  """(B, clip latent steps, width) features of each clip's whole soundtrack."""
  spec = meta['clip_spec']
  return model.apply(params, batch['audio'], batch['fps'], spec['sample_rate'],
                     meta.get('temporal', 1), meta['grid'][0], use_audio,
                     method=model.audio_features)


def window(x: jax.Array, starts: jax.Array, frames: int) -> jax.Array:
  """Per-example window [start, start + frames) along axis 1."""
  return jax.vmap(lambda v, s: jax.lax.dynamic_slice_in_dim(v, s, frames, 0)
                  )(x, starts)


# Logits of one loss chunk stay under this many bytes (float32): the kny
# config's (64, 1024, 15360) logits would be 4 GB at once, and as much again
# for their gradient.
LOGITS_BUDGET = 2 ** 29


def loss_chunks(batch: int, tokens: int, codebook: int, chunk: int = 0) -> int:
  """How many chunks the predicted tokens' cross-entropy is computed in:
  `chunk` tokens each when given, else the fewest whose logits fit
  LOGITS_BUDGET (1 for small models: the plain computation)."""
  if chunk:
    per = min(chunk, tokens)
  else:
    per = max(1, LOGITS_BUDGET // (4 * batch * codebook))
  n = -(-tokens // min(per, tokens))
  while tokens % n:  # equal chunks
    n += 1
  return n


def cross_entropy(model, params, x, targets, chunks: int):
  """Summed cross-entropy and correct count of `targets` (B, M) given the
  final hidden states `x` (B, M, width). With chunks > 1 the output layer
  runs on one slice of the tokens at a time under jax.checkpoint, so only one
  slice's logits exist at a time, forward and backward."""
  def one(x, t):
    logits = model.apply(params, x, method=model.logits)
    ce = optax.softmax_cross_entropy_with_integer_labels(logits, t)
    return jnp.sum(ce), jnp.sum(jnp.argmax(logits, -1) == t)

  if chunks == 1:
    return one(x, targets)
  b, m, d = x.shape
  xs = x.reshape(b, chunks, m // chunks, d).swapaxes(0, 1)
  ts = targets.reshape(b, chunks, m // chunks).swapaxes(0, 1)

  def body(carry, xt):
    ce, right = jax.checkpoint(one)(*xt)
    return (carry[0] + ce, carry[1] + right), None

  (ce, right), _ = jax.lax.scan(body, (jnp.zeros((), jnp.float32),
                                       jnp.zeros((), jnp.int32)), (xs, ts))
  return ce, right


def loss_fn(model, params, batch, meta, order, starts, use_audio, *,
            train=False, rng=None, shuffle_audio=False, chunk: int = 0):
  """Mean cross-entropy and accuracy over the unknown tokens of the windows.

  The output layer and the loss run on the predicted positions only (the
  known context needs no logits), in chunks (`loss_chunks`).
  """
  frames = model.grid[0]
  feats = audio_features(model, params, batch, meta, use_audio)
  if shuffle_audio:  # each clip gets the soundtrack of another clip
    feats = jnp.roll(feats, feats.shape[0] // 2, axis=0)
  seq = order.to_sequence(window(batch['tokens'], starts, frames))
  x = model.apply(params, *sample.inputs(seq, order, model.codebook_size),
                  window(feats, starts, frames), train=train,
                  rngs={'dropout': rng} if train else None, method=model.hidden)
  k = order.num_known
  targets = seq[:, k:]
  n = targets.size
  chunks = loss_chunks(x.shape[0], targets.shape[1], model.codebook_size, chunk)
  ce, right = cross_entropy(model, params, x[:, k:], targets, chunks)
  return ce / n, right / n


def setup(config, meta: dict):
  """(model, order, optimiser, make_state), also used to restore."""
  cfg = config.transformer
  check(config, meta)
  model = make_model(config, meta)
  order = make_order(config, meta)
  tx = optim.optimizer(cfg)
  clip_steps, h, w = meta['grid']
  n_audio = tokens_lib.audio_len(meta)

  def init(module):
    b = 1
    feats = module.audio_features(
        jnp.zeros((b, n_audio), jnp.int16), jnp.full((b,), 24.0),
        meta['clip_spec']['sample_rate'], meta.get('temporal', 1), clip_steps,
        jnp.ones((b,), bool))
    seq = jnp.zeros((b, order.perm.size), jnp.int32)
    return module(*sample.inputs(seq, order, module.codebook_size),
                  feats[:, :cfg.frames])

  def make_state(rng):
    params = model.init(rng, method=init)
    return State(step=jnp.zeros((), jnp.int32), params=params,
                 opt_state=tx.init(params), ema_params=params,
                 nonfinite=jnp.zeros((), jnp.int32))

  return model, order, tx, make_state


def make_update(config, model, order, tx, meta):
  cfg = config.transformer
  base_rng = jax.random.key(config.seed)
  clip_steps = meta['grid'][0]

  def update(state: State, batch: dict) -> tuple[State, dict]:
    rng = jax.random.fold_in(base_rng, state.step)
    r_start, r_audio, r_drop = jax.random.split(rng, 3)
    b = batch['tokens'].shape[0]
    starts = jax.random.randint(r_start, (b,), 0, clip_steps - cfg.frames + 1)
    use_audio = batch['has_audio'] & (
        jax.random.uniform(r_audio, (b,)) >= cfg.audio_dropout)
    (loss, acc), grads = jax.value_and_grad(
        lambda p: loss_fn(model, p, batch, meta, order, starts, use_audio,
                          train=True, rng=r_drop,
                          chunk=cfg.get('loss_chunk', 0)),
        has_aux=True)(state.params)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    new = state.replace(params=params, opt_state=opt_state,
                        ema_params=optim.ema(state.ema_params, params, cfg.ema))
    grad_norm = optax.tree.norm(grads)
    # The update too: a bad schedule or optimiser state poisons it on its own.
    ok = (jnp.isfinite(loss) & jnp.isfinite(grad_norm)
          & jnp.isfinite(optax.tree.norm(updates)))
    new = optim.keep_if_finite(ok, new, state)
    new = new.replace(step=state.step + 1,
                      nonfinite=state.nonfinite + (~ok).astype(jnp.int32))
    return new, dict(loss=loss, accuracy=acc, grad_norm=grad_norm,
                     lr=optim.schedule(cfg)(state.step))

  return update


def check_tokens(config, workdir: str, meta: dict, token_dir: str,
                 stages: tuple[str, ...]) -> Optional[dict]:
  """The dataset identity of the token records, once they are known to be
  of the dataset built now and to hold the splits `stages` read."""
  recorded = meta.get('dataset_identity')
  identity.require_same(
      recorded, dataset.current_identity(config, workdir),
      what=f'the token records in {token_dir}',
      fix='Make them again from the current dataset: --mode=tokenize.')
  splits.check(config, stages, meta.get('splits', {}),
               f'the token records in {token_dir}',
               '. Assign episodes to it (--config.data.split_file), rebuild '
               'the dataset and tokenize again')
  return recorded


def restore_for_inference(config, workdir: str, meta: dict, mesh):
  """(model, order, EMA params, step) of the newest transformer checkpoint
  that restores; identity.Changed when it was trained on other token records
  (another dataset) than `meta`'s."""
  model, order, _, make_state = setup(config, meta)
  abstract = jax.eval_shape(make_state, jax.random.key(0))
  ckpt = checkpoint.Checkpoints(os.path.join(workdir_of(workdir), 'checkpoints'))
  state, step = ckpt.restore_for_inference(
      checkpoint.abstract(abstract, mesh_lib.param_shardings(abstract, mesh)),
      label='transformer', dataset=meta.get('dataset_identity'),
      fix='It may have trained on the episodes it would now be tested on. '
      'Train it again in a new --workdir, or put the episode folder (or '
      'split file) back as it was.')
  return model, order, state.ema_params, step


def train_and_evaluate(config, workdir: str) -> dict:
  cfg = config.transformer
  out = workdir_of(workdir)
  # One set of token records for the whole run, even if tokenize swaps in
  # a new one meanwhile.
  token_dir = tokens_lib.current(tokenize.tokens_dir(workdir))
  meta = tokens_lib.read_meta(token_dir)
  data_identity = check_tokens(config, workdir, meta, token_dir,
                               ('transformer',))

  # ---------------------------------------------------------------- Mesh
  mesh = mesh_lib.make_mesh(config.mesh.fsdp, config.mesh.devices)
  for name in ('batch_size', 'eval_batch_size'):
    if getattr(cfg, name) % mesh.size:
      raise ValueError(f'config.transformer.{name}={getattr(cfg, name)} does '
                       f'not divide over the {mesh.size} devices of the mesh; '
                       f'use a multiple of {mesh.size}')

  # ------------------------------------------------------ Input pipeline
  train_batches = lambda start: iter(tokens_lib.make_loader(
      token_dir, 'train', global_batch_size=cfg.batch_size, seed=config.seed,
      worker_count=config.input.worker_count, start=start))

  # ---------------------------------------------- Model & optimiser
  model, order, tx, make_state = setup(config, meta)

  # --------------------------------------------------- Shard & transfer
  abstract_state = jax.eval_shape(make_state, jax.random.key(0))
  state_sharding = mesh_lib.param_shardings(abstract_state, mesh)
  make_state = jax.jit(make_state, out_shardings=state_sharding)

  # -------------------------------------------------------- Update step
  update = jax.jit(make_update(config, model, order, tx, meta),
                   donate_argnums=0,
                   out_shardings=(state_sharding, mesh_lib.replicated(mesh)))

  # -------------------------------------------------- Load checkpoint
  ckpt = checkpoint.Checkpoints(os.path.join(out, 'checkpoints'), cfg.keep)
  state, start = loop.restore_or_init('transformer', config, ckpt,
                                      abstract_state, state_sharding, make_state,
                                      dataset=data_identity)
  writer = metrics_lib.Writer(out, cfg.steps, 'transformer')
  n_params = sum(x.size for x in jax.tree.leaves(state.params))
  if jax.process_index() == 0:
    print(f'transformer: {n_params / 1e6:.2f}M parameters, {order.perm.size} '
          f'tokens per window ({order.num_known} known), attention '
          f'{model.attention}, remat {model.remat}, '
          f'{"bf16" if cfg.mixed_precision else "float32"}, mesh '
          f'{dict(mesh.shape)}, start step {start}', flush=True)

  # ------------------------------------------------------------- Evals
  @jax.jit
  def val_losses(params, batch):
    starts = jnp.zeros(batch['tokens'].shape[0], jnp.int32)
    on, off = batch['has_audio'], jnp.zeros_like(batch['has_audio'])
    run = lambda **kw: loss_fn(model, params, batch, meta, order, starts, **kw)
    return dict(zip(('loss', 'accuracy'), run(use_audio=on)),
                loss_mismatched_audio=run(use_audio=on, shuffle_audio=True)[0],
                loss_no_audio=run(use_audio=off)[0])

  def validate(step, state):
    loader = tokens_lib.make_loader(token_dir, 'validation', shuffle=False,
                                    global_batch_size=cfg.eval_batch_size,
                                    num_epochs=1)
    sums = [val_losses(state.ema_params, pipeline.to_global(b, mesh))
            for b in itertools.islice(loader, cfg.eval_batches)]
    if not sums:
      raise ValueError('the validation split has fewer token records than '
                       f'one batch ({cfg.eval_batch_size}); lower '
                       'config.transformer.eval_batch_size')
    result = {k: float(np.mean([s[k] for s in sums])) for k in sums[0]}
    writer.scalars(step, {f'val/{k}': v for k, v in result.items()})
    result = dict(step=step, **result)
    if jax.process_index() == 0:
      storage.write_text(os.path.join(out, 'validation.json'),
                         json.dumps(result, indent=1))
    print(f"transformer val step {step}: loss {result['loss']:.4f} (mismatched "
          f"audio {result['loss_mismatched_audio']:.4f}, no audio "
          f"{result['loss_no_audio']:.4f}), accuracy {result['accuracy']:.3f}",
          flush=True)
    return result

  # -------------------------------------------------------- Train loop
  return loop.run('transformer', cfg, config, state=state, start=start,
                  update=update, data_iter=train_batches(start), mesh=mesh,
                  ckpt=ckpt, writer=writer, evaluate=validate,
                  show=('loss', 'accuracy'), dataset=data_identity)
