"""Activation checkpointing policies, by the names the configs use
(`tokenizer.remat`, `transformer.remat`): what a block's backward pass may
keep instead of recomputing."""

import jax

POLICIES = {
    'none': None,  # keep everything (fastest, most memory)
    'dots': jax.checkpoint_policies.dots_with_no_batch_dims_saveable,
    'full': jax.checkpoint_policies.nothing_saveable,  # keep only block inputs
}


def policy(name: str, field: str):
  """The policy called `name`; ValueError naming `field` if there is none."""
  if name not in POLICIES:
    raise ValueError(f'{field}={name!r}: choose one of {", ".join(POLICIES)}')
  return POLICIES[name]
