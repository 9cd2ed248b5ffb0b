"""The widget's remembered settings: a small JSON file in the user config folder.

A settings file is only ever a convenience: one that cannot be read, is not
a JSON object, or holds values of the wrong type or outside an option's
limits is never applied as it is and never stops the widget. Each value is
checked on its own (option values by their
:meth:`~napari_colorize.options.OptionSpec.validate`); what fails is
ignored and reported as a problem, for the widget to tell the user.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

#: A check takes a remembered value and returns it (normalised), or raises
#: ValueError or TypeError with a message for users.
Check = Callable[[Any], Any]


def settings_file() -> Path:
    """Where the widget remembers its settings (a JSON file in the user config dir)."""
    try:
        from platformdirs import user_config_dir

        folder = Path(user_config_dir("napari-colorize", appauthor=False))
    except ImportError:  # platformdirs comes with napari; this is a fallback
        folder = Path.home() / ".config" / "napari-colorize"
    return folder / "widget.json"


def read_settings() -> tuple[dict[str, Any], list[str]]:
    """The remembered settings as stored, and what was wrong with the file.

    Returns
    -------
    settings : dict
        The stored JSON object; {} when there is no file or it is unusable.
    problems : list of str
        Why the file was unusable (unreadable, not JSON, not a JSON object);
        empty when it was fine or absent. The values are not checked here
        (see :func:`check_settings`).
    """
    path = settings_file()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}, []
    except (OSError, UnicodeDecodeError) as exc:
        return {}, [f"the file cannot be read ({exc})"]
    try:
        settings = json.loads(text)
    except ValueError as exc:
        return {}, [f"the file is not valid JSON ({exc})"]
    if not isinstance(settings, dict):
        return {}, [f"the file holds {_json_kind(settings)}, not a JSON object of settings"]
    return settings, []


def _json_kind(value) -> str:
    """What a parsed JSON value is, in JSON's words."""
    if value is None or isinstance(value, bool):
        return json.dumps(value)
    kinds = {list: "a list", str: "a string", int: "a number", float: "a number"}
    return kinds.get(type(value), type(value).__name__)


def load_settings() -> dict[str, Any]:
    """The remembered settings as stored, or {} when there are none or the file
    is unusable (logged as a warning). Values are not checked: see :func:`check_settings`."""
    settings, problems = read_settings()
    for problem in problems:
        logger.warning("ignoring napari-colorize settings in %s: %s", settings_file(), problem)
    return settings


def save_settings(settings: Mapping[str, Any]) -> None:
    """Remember ``settings``; a failure to write is logged, never raised."""
    path = settings_file()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(dict(settings), indent=2, sort_keys=True), encoding="utf-8")
    except (OSError, TypeError, ValueError) as exc:
        logger.warning("cannot save napari-colorize settings to %s: %s", path, exc)


def check_settings(settings: Mapping[str, Any], checks: Mapping[str, Check]) -> tuple[dict[str, Any], list[str]]:
    """Split remembered ``settings`` into values fit to apply and problems.

    Parameters
    ----------
    settings : mapping
        Remembered values by name.
    checks : mapping of str to callable
        One check per known name: returns the value (normalised) or raises
        ValueError or TypeError saying what is wrong.

    Returns
    -------
    values : dict
        The values that passed their check, normalised.
    problems : list of str
        One line per value that did not; names without a check (from another
        version of the plugin, say) are left out silently.
    """
    values, problems = {}, []
    for name, value in settings.items():
        check = checks.get(name)
        if check is None:
            logger.debug("ignoring unknown remembered setting %s=%r", name, value)
            continue
        try:
            values[name] = check(value)
        except (ValueError, TypeError) as exc:
            problems.append(name_problem(name, exc))
    return values, problems


def name_problem(name: str, error: Exception) -> str:
    """'name: what is wrong', without saying the name twice when the message starts with it."""
    message = str(error)
    return message if message.startswith(f"{name} ") else f"{name}: {message}"


def check_flag(value) -> bool:
    """``value`` if it is True or False (JSON true/false), else a TypeError."""
    if not isinstance(value, bool):
        raise TypeError(f"must be true or false, got {value!r}")
    return value


def check_choice(choices) -> Check:
    """A check accepting only one of ``choices`` (what a chooser offers here)."""
    choices = list(choices)

    def check(value):
        if value not in choices:
            raise ValueError(f"{value!r} is not offered here (choices: {', '.join(map(str, choices))})")
        return value

    return check


def check_subset(choices) -> Check:
    """A check accepting any number of ``choices`` (what a multiple selection offers here), as a list."""
    single = check_choice(choices)

    def check(values):
        return [single(value) for value in values]

    return check


def check_checkpoint_path(value) -> str:
    """A remembered checkpoint path: '' (none chosen) or an existing file, else a TypeError or ValueError."""
    if not isinstance(value, str):
        raise TypeError(f"must be a file path, got {value!r}")
    if value.strip() in ("", "."):  # '.' is an empty file chooser
        return ""
    if not Path(value).is_file():
        raise ValueError(f"the file {value} no longer exists")
    return value


def chained(*checks: Check) -> Check:
    """A check that runs ``checks`` in turn, each on the result of the one before."""

    def check(value):
        for each in checks:
            value = each(value)
        return value

    return check


class RememberedControls:
    """Widget controls whose values are remembered between sessions, each
    with the check a remembered value must pass before it is applied.

    Parameters
    ----------
    controls : mapping of str to control
        By setting name; a control has a ``value``.
    checks : mapping of str to Check
        By setting name.
    """

    def __init__(self, controls: Mapping[str, Any], checks: Mapping[str, Check]):
        self.controls, self.checks = dict(controls), dict(checks)

    def values(self) -> dict[str, Any]:
        """The current choices ('' for an empty file chooser, which says '.')."""
        values = {name: control.value for name, control in self.controls.items()}
        for name, value in values.items():
            if hasattr(value, "parts"):  # a path from a file chooser
                values[name] = "" if str(value) in ("", ".") else str(value)
        return values

    def apply(self, settings: Mapping[str, Any]) -> list[str]:
        """Apply remembered choices, each checked first; one line per value
        not applied (unknown names are skipped)."""
        values, problems = check_settings(settings, self.checks)
        for name, value in values.items():
            if value == "" and hasattr(self.controls[name].value, "parts"):
                continue  # an empty file chooser would take '' as the current folder
            try:
                self.controls[name].value = value
            except (ValueError, TypeError) as exc:  # e.g. within the option's limits but not the spin box's
                problems.append(name_problem(name, exc))
        return problems

    def restore(self) -> list[str]:
        """Apply the settings file; returns the lines about values it could not use (also logged)."""
        settings, problems = read_settings()
        problems += self.apply(settings)
        if problems:
            logger.warning("napari-colorize ignored remembered settings in %s: %s", settings_file(), "; ".join(problems))
        return problems
