"""The widget control of one option, built from its declaration (see
:func:`napari_colorize.options.option_specs`): label, tooltip, limits and
default all come from the :class:`~napari_colorize.options.OptionSpec`."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from magicgui.widgets import ComboBox, FloatSpinBox, Select, SpinBox

from .options import OptionSpec

if TYPE_CHECKING:
    from magicgui.widgets.bases import ValueWidget


def option_control(spec: OptionSpec, choices: list | Callable | None = None) -> ValueWidget:
    """The control of one option, with its label, tooltip, limits and default from ``spec``.

    ``choices`` (a list, or a callable that magicgui asks again on
    ``reset_choices``) replaces the spec's own (for what depends on this
    machine: the models shipped or trained here, the devices present). Options with choices get a
    chooser (a multiple selection for ``spec.multiple``), numbers a spin box over ``spec.gui_range``.

    Raises
    ------
    TypeError
        For an option with neither choices nor a ``gui_range``.
    """
    common = {"label": spec.label, "tooltip": spec.help[:1].upper() + spec.help[1:] + ".", "value": spec.default}
    if choices is None and spec.choices is not None:
        choices = list(zip(spec.choice_labels or [str(c) for c in spec.choices], spec.choices))
    if choices is not None and spec.multiple:
        return Select(choices=choices, allow_multiple=True, **{**common, "value": list(spec.default)})
    if choices is not None:
        return ComboBox(choices=choices, **common)
    if spec.kind in (int, float) and spec.gui_range is not None:
        low, high, step = spec.gui_range
        if spec.kind is int:
            return SpinBox(min=int(low), max=int(high), step=int(step), **common)
        return FloatSpinBox(min=low, max=high, step=step, **common)
    raise TypeError(f"option {spec.name!r} has no widget control: give it choices or a gui_range, or in_widget=False")
