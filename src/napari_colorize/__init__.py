"""napari-colorize: predicted colour for grayscale scientific images.

The core (``colorize``, ``train``, ``evaluate``) runs without napari; the
napari dock widget and the ``napari-colorize`` command line are thin faces
over it. Colours are predicted by a model, not measured.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("napari-colorize")
except PackageNotFoundError:  # running from a source tree
    __version__ = "0.0.0+unknown"

from .engine import ColorizeCancelled
from .options import ColorizeOptions
from .pipeline import colorize

__all__ = ["ColorizeCancelled", "ColorizeOptions", "__version__", "colorize"]
