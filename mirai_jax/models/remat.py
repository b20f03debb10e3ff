"""Activation checkpointing policies, by the names the configs use
(`tokenizer.remat`, `transformer.remat`): what a block's backward pass may
keep instead of recomputing."""

import jax

# The fused attention kernels are custom calls, not dots: under `dots` their
# forward pass ran again in the backward pass (on the H100, 24 cuDNN forward
# calls per kny step for 12 layers). Their outputs (the attention output and
# its softmax statistics: 200 MB per layer at kny's batch) are worth keeping.
FUSED_ATTENTION = ('dot_product_attention_fwd_wrapper',  # cuDNN (GPU)
                   'dot_product_attention_fwd',
                   'pallas_call')  # the Pallas kernel (TPU)


def fused_attention_saveable(prim, *_, **__) -> bool:
  return prim.name in FUSED_ATTENTION


POLICIES = {
    'none': None,  # keep everything (fastest, most memory)
    'dots': jax.checkpoint_policies.dots_with_no_batch_dims_saveable,
    # dots, and the fused attention's outputs
    'dots_attention': jax.checkpoint_policies.save_from_both_policies(
        jax.checkpoint_policies.dots_with_no_batch_dims_saveable,
        fused_attention_saveable),
    'full': jax.checkpoint_policies.nothing_saveable,  # keep only block inputs
}


def policy(name: str, field: str):
  """The policy called `name`; ValueError naming `field` if there is none."""
  if name not in POLICIES:
    raise ValueError(f'{field}={name!r}: choose one of {", ".join(POLICIES)}')
  return POLICIES[name]
