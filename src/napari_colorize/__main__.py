"""``python -m napari_colorize``: the ``napari-colorize`` command."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
