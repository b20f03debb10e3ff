"""Stage 2 (`--mode=tokenize`): encode every clip once with the trained tokenizer.

Writes a new set of token records (<split>.array_record-* and meta.json with
the dataset's identity) under <workdir>/tokens/ and swaps it in when it is
complete (see mirai_jax/data/tokens.py): a run that dies leaves the old set
in use. Each process encodes its own share of every split and writes its own
shard; the EMA parameters of the newest tokenizer checkpoint that restores
are used, and one trained on another dataset is refused.
"""

from __future__ import annotations

import math
import os
import time

from absl import logging
import jax
from jax.experimental import multihost_utils
import numpy as np

from mirai_jax import distributed
from mirai_jax import inference
from mirai_jax import mesh as mesh_lib
from mirai_jax import storage
from mirai_jax import workdir as workdir_lib
from mirai_jax import xla_options
from mirai_jax.data import identity
from mirai_jax.data import pipeline
from mirai_jax.data import tokens


def run(config, workdir: str) -> dict:
  builder = workdir_lib.open_dataset(config, workdir)
  spec = builder.info.metadata['clip_spec']
  data_identity = identity.of_builder(builder)
  mesh = workdir_lib.make_mesh(config)
  tok = inference.load_tokenizer(config, workdir, spec, mesh, data_identity)
  model, params, model_state = tok.model, tok.params, tok.state
  # The parameters are arguments, not constants folded into the program.
  encode = jax.jit(lambda p, ms, v: inference.Tokenizer(
      model, p, ms, tok.step).encode(v),
                   compiler_options=xla_options.convolutions())
  root = workdir_lib.tokens_dir(workdir)
  nproc, pid = jax.process_count(), jax.process_index()
  # One fresh folder per run, named alike on every process. The broadcast is
  # the first collective: all processes start it together.
  distributed.meet('tokenizer restored')
  run_id = int(multihost_utils.broadcast_one_to_all(
      np.int32(time.time_ns() % 2**31)))
  out = tokens.new_set(root, f'{run_id:x}')
  storage.makedirs(out)
  rows = mesh_lib.round_batch(config.tokenizer.eval_batch_size, mesh) // nproc
  dtype = np.uint16 if model.codebook_size <= 2 ** 16 else np.int32
  counts, grid = {}, None
  for split in sorted(builder.info.splits):
    source = builder.as_data_source(split=split)
    mine = np.array_split(np.arange(len(source)), nproc)[pid]
    blank = np.zeros_like(source[0]['video'])
    # The same number of steps on every process: each step is a collective.
    steps = math.ceil(math.ceil(len(source) / nproc) / rows)
    writer = tokens.Writer(tokens.shard_path(out, split, pid, nproc))
    t0 = time.time()
    for s in range(0, steps * rows, rows):
      records = [source[int(i)] for i in mine[s:s + rows]]
      # The last batches are padded, then cut.
      video = np.stack([r['video'] for r in records] +
                       [blank] * (rows - len(records)))
      idx = pipeline.to_local(encode(params, model_state, pipeline.to_global(
          {'v': video}, mesh)['v']), mesh)
      grid = idx.shape[1:]
      for r, t in zip(records, idx):
        writer.write(dict(
            tokens=t.astype(dtype), audio=r['audio'], has_audio=r['has_audio'],
            episode=r['episode'].decode() if isinstance(r['episode'], bytes)
            else str(r['episode']),
            start_frame=r['start_frame'], shot=r['shot'],
            fps_num=r['fps_num'], fps_den=r['fps_den'],
            sample_rate=r['sample_rate']))
    writer.close()
    counts[split] = len(source)  # every clip is in one process's shard
    logging.info('tokenize %s: %d clips in %.1f s', split, writer.count,
                 time.time() - t0)
  meta = tokens.Records(
      grid=tuple(grid), codebook_size=model.codebook_size,
      tokenizer_step=tok.step, clip_spec=spec, splits=counts,
      temporal=config.tokenizer.temporal,
      audio_len=pipeline.audio_len_of(builder), processes=nproc,
      dataset=os.fspath(builder.data_dir),
      dataset_identity=data_identity).to_meta()
  # Every shard closed before the set is published; no process reads
  # tokens/CURRENT before it names this set.
  distributed.meet('tokenize: shards written')
  if pid == 0:
    tokens.publish(root, out, meta)
  distributed.meet('tokenize: published')
  print(f'tokenize: {counts} clips as {tuple(grid)} token grids '
        f'(codebook {model.codebook_size}) in {out}', flush=True)
  return meta
