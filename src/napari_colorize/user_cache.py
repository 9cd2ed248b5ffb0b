"""The user's cache folder for napari-colorize (results too large for
memory, compiled int8 graphs): the platform's own, as napari's."""

from __future__ import annotations

from pathlib import Path


def user_cache_folder(name: str) -> Path:
    """The folder ``name`` in napari-colorize's user cache directory (not made here)."""
    try:
        from platformdirs import user_cache_dir

        return Path(user_cache_dir("napari-colorize", appauthor=False)) / name
    except ImportError:  # platformdirs comes with napari; this is a fallback
        return Path.home() / ".cache" / "napari-colorize" / name
