"""The anime_clips TFDS dataset (see anime_clips_dataset_builder.py)."""

from tfds_builders.anime_clips.anime_clips_dataset_builder import AnimeClipsConfig
from tfds_builders.anime_clips.anime_clips_dataset_builder import Builder
from tfds_builders.anime_clips.anime_clips_dataset_builder import CONFIGS
