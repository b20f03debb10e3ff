"""Reading data online: built clips and token records -> global batches.

pipeline.py reads a built anime_clips dataset from its files (no builder),
tokens.py the token records of stage 2; splits.py and identity.py say which
episodes a split holds and whether a dataset changed under a run.
"""
