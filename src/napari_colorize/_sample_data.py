"""Sample data for File > Open Sample > napari-colorize.

Every sample loads offline: the real images are ones scikit-image installs
with itself (no download), the electron-microscopy samples are simulated here
from a fixed seed and say so in their names. Nothing is bundled.

Each function returns napari layer data tuples ``[(data, kwargs, 'image')]``.
Their metadata names the source and its terms.
"""

from __future__ import annotations

import numpy as np

#: Frames and size of the simulated serial-section stack.
EM_STACK_SHAPE = (8, 256, 256)
#: Size of the simulated electron-micrograph frame.
EM_FRAME_SHAPE = (512, 512)
#: Frames and size of the moon drift series.
DRIFT_FRAMES = 5
DRIFT_SIZE = 384
_SEED = 2016
_SIMULATED_NOTE = "simulated by napari-colorize (not a real micrograph); free to use"


def _layer(data: np.ndarray, name: str, *, source: str, terms: str, **kwargs) -> list[tuple]:
    """Wrap ``data`` as a single napari Image layer data tuple."""
    metadata = {"sample_source": source, "sample_terms": terms}
    return [(data, {"name": name, "metadata": metadata, **kwargs}, "image")]


def hubble_deep_field() -> list[tuple]:
    """Hubble eXtreme Deep Field as one grayscale telescope frame.

    The luminance of scikit-image's ``data.hubble_deep_field`` (NASA, public
    domain), so the model sees what a monochrome camera would record.
    """
    from skimage import data

    from .color import to_luminance

    luminance = np.round(to_luminance(data.hubble_deep_field())).astype(np.uint8)
    return _layer(
        luminance,
        "Hubble deep field (gray)",
        source="scikit-image data.hubble_deep_field, luminance (NASA / HubbleSite)",
        terms="public domain (NASA media guidelines)",
    )


def moon_drift_series() -> list[tuple]:
    """A five-frame grayscale stack: a window drifting across the Moon.

    Made from scikit-image's ``data.moon`` by shifting a 384-pixel window a
    few pixels per frame, the way a telescope that is not tracking drifts.
    """
    from skimage import data

    moon = data.moon()
    steps = np.linspace(0, moon.shape[0] - DRIFT_SIZE, DRIFT_FRAMES).round().astype(int)
    frames = [moon[y : y + DRIFT_SIZE, x : x + DRIFT_SIZE] for y, x in zip(steps, steps[::-1])]
    return _layer(
        np.stack(frames),
        "Moon drift series (5 frames)",
        source="scikit-image data.moon, shifted windows",
        terms="scikit-image sample data (BSD-3-Clause distribution)",
        axis_labels=("t", "y", "x"),
    )


def cell_phase_image() -> list[tuple]:
    """A cell floating in saline, quantitative phase microscopy (0.107 µm pixels).

    scikit-image's ``data.cell`` (Müller et al. 2018, CC0). Its pixel size is
    set as the layer scale, so the colorized layer must keep it.
    """
    from skimage import data

    return _layer(
        data.cell(),
        "Cell, phase image (0.107 µm px)",
        source="scikit-image data.cell (Müller et al., Optics Express 2018)",
        terms="CC0",
        scale=(0.107, 0.107),
        units=("µm", "µm"),
        axis_labels=("y", "x"),
    )


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, ...], sigma: float) -> np.ndarray:
    """Gaussian-filtered white noise scaled to zero mean and unit spread."""
    from scipy import ndimage

    field = ndimage.gaussian_filter(rng.standard_normal(shape).astype(np.float32), sigma)
    return (field - field.mean()) / (field.std() + 1e-6)


def simulated_em_volume(shape: tuple[int, int, int] = EM_STACK_SHAPE, *, seed: int = _SEED) -> np.ndarray:
    """Simulate serial electron-microscopy sections of densely packed cells.

    Cells are the Voronoi regions of random seeds; their walls are dark
    stained membranes, organelles are dark smooth blobs, and the cytoplasm has
    a fine granular texture with shot noise on top. It only looks like a
    transmission EM section: it is a stand-in for real data, made so that the
    plugin can ship an electron-microscopy sample without a licensing question.

    Parameters
    ----------
    shape : (int, int, int)
        Sections, rows, columns.
    seed : int
        Seed of the random generator: the same seed gives the same volume.

    Returns
    -------
    volume : ndarray of uint8, shape ``shape``
    """
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    height, width = shape[1:]
    # Sections are thinner than the in-plane cell size: stretch z.
    z_step = 6.0
    cells = max(4, height * width // 2500)
    seeds = np.zeros(shape, dtype=bool)
    coords = (rng.random((cells, 3)) * np.array(shape)).astype(int)
    seeds[tuple(coords.T)] = True
    labels = ndimage.label(seeds)[0]
    nearest = ndimage.distance_transform_edt(labels == 0, sampling=(z_step, 1.0, 1.0), return_distances=False, return_indices=True)
    cell_id = labels[tuple(nearest)]
    walls = np.zeros(shape, dtype=bool)
    for axis in (1, 2):
        walls |= np.diff(cell_id, axis=axis, prepend=np.take(cell_id, [0], axis=axis)) != 0
    membrane = ndimage.gaussian_filter(walls.astype(np.float32), (0.3, 1.2, 1.2))
    organelles = np.clip(_smooth_noise(rng, shape, (1.0, 6.0, 6.0)) - 1.6, 0, None)
    granules = _smooth_noise(rng, shape, (0.5, 1.0, 1.0))
    image = 0.72 - 0.55 * np.clip(membrane * 2.5, 0, 1) - 0.35 * np.clip(organelles * 2.0, 0, 1) + 0.05 * granules
    image += 0.04 * rng.standard_normal(shape).astype(np.float32)
    return (np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8)


def simulated_em_frame() -> list[tuple]:
    """One simulated transmission-EM section, 512 x 512 (see :func:`simulated_em_volume`)."""
    frame = simulated_em_volume((1, *EM_FRAME_SHAPE), seed=_SEED + 1)[0]
    return _layer(
        frame,
        "EM section (simulated)",
        source="simulated_em_volume in napari_colorize._sample_data",
        terms=_SIMULATED_NOTE,
        scale=(4.0, 4.0),
        units=("nm", "nm"),
        axis_labels=("y", "x"),
    )


def simulated_em_stack() -> list[tuple]:
    """Eight simulated serial EM sections, 256 x 256 each, 40 nm apart."""
    return _layer(
        simulated_em_volume(EM_STACK_SHAPE),
        "EM serial sections (simulated, 8 frames)",
        source="simulated_em_volume in napari_colorize._sample_data",
        terms=_SIMULATED_NOTE,
        scale=(40.0, 4.0, 4.0),
        units=("nm", "nm", "nm"),
        axis_labels=("z", "y", "x"),
    )
