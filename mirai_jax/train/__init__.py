"""Training: the two training stages (tokenizer.py, transformer.py) and the
machinery only they use (loop, optim, metrics, flops)."""
