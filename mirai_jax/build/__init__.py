"""Building datasets offline: episode files -> shots -> clip records.

What goes into a clip (decoding is in video_io.py, cuts in shots.py, the
per-episode job in clips.py, the folder and split files in episodes.py) and
the synthetic demo episodes. The TFDS builder (tfds_builders/anime_clips)
and the `data` stage (dataset.py) use this; nothing that reads a built
dataset does.
"""
