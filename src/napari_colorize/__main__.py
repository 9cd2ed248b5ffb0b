"""``python -m napari_colorize``: the ``napari-colorize`` command."""

from .cli import command

if __name__ == "__main__":
    command()
