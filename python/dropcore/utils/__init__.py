"""``dropcore.utils``: ``dropcore.utils.data`` (datasets, samplers, DataLoader, random_split)."""

from . import data

__all__ = ["data"]
