"""TFDS dataset builders of mirai_jax (importing one registers it with TFDS)."""
