"""napari-colorize: predicted colour for grayscale scientific images.

The core (``colorize``, ``lightness``, ``train``, ``evaluate``) runs without napari; the
napari dock widget and the ``napari-colorize`` command line are thin faces
over it. Colours are predicted by a model, not measured.

Layout, imports running one way: colour science and tiling (``color``,
``tiling``, ``metrics``) -> inputs (``arrays``, ``normalization``,
``restoration``, ``devices``) -> models (``architectures``: a registry of network families
with their tile size, output stride and inputs; ``model``: the
``Colorizer`` and its checkpoints) -> ``options`` (every option declared
once) and ``provenance`` -> the work (``engine``, ``pipeline``, ``cluster``)
and files and training (``formats``, ``tiff``, ``io``, ``training_data``, ``training``,
``evaluation``) -> napari without Qt (``layer_geometry``, ``jobs``,
``settings``, ``output_store``) -> the faces (``cli``, ``_widget``).
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("napari-colorize")
except PackageNotFoundError:  # running from a source tree
    __version__ = "0.0.0+unknown"

from .engine import ColorizeCancelled
from .options import ColorizeOptions
from .pipeline import colorize, lightness

__all__ = ["ColorizeCancelled", "ColorizeOptions", "__version__", "colorize", "lightness"]
