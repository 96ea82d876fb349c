"""Typed run settings and the value constants they are checked against, without importing torch.

A :class:`Setting` is one field of a :class:`~transferlab.runs.RunSpec`: its type (the annotation, which
also says which TOML types a study may give), its default, what a valid value is, its help (unit or
meaning) and, for strategy settings, the value ``resolved()`` fills in when it is left unset. Every
setting checks its value with the same error template (:func:`invalid`, :func:`unknown`), so a bad value
reads the same whichever layer caught it.

The constants here (optimizers, schedules, heads' hidden sizes, augmentations...) are what the config
layer validates against; the modules that implement them (train.py, models/heads.py, data/augment.py)
import them from here, so that checking a spec or building the CLI never loads torch.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from transferlab.errors import TransferlabError, options_hint

# Training loop (train.py).
OPTIMIZERS = ("adam", "sgd")
BN_STATS = ("recalibrate", "momentum", "pretrained")
SCHEDULES = ("constant", "cosine")
AUTO_PATIENCE = 10  # validation checks without a lower validation loss (set by RunSpec.resolved)
# Heads (models/heads.py): the VGG16 study's FC stacks, from its parameter counts (DESIGN.md).
FC_HIDDEN: dict[str, tuple[int, ...]] = {"fc1": (100,), "fc2": (100, 50), "fc3": (100, 50, 25)}
ACTIVATION_NAMES = ("sigmoid", "elu", "relu")
INITS = ("uniform", "default")
# Backbones (models/backbone.py): feature map -> vector.
POOLS = ("avg", "flatten")
# Data.
SIDES = ("source", "target")
DEVICES = ("cpu", "cuda", "auto")
AUGMENTATIONS = ("mirror", "noise", "crop", "affine")
DEFAULT_AUGMENT = "mirror,noise"  # the studies' augmentation baseline (CIFAR-domains report)


def invalid(name: str, value: Any, expect: str) -> TransferlabError:
    """The one template for a value out of range: ``lr=0 is invalid; give a number > 0 (e.g. 1e-3)``."""
    return TransferlabError(f"{name}={value!r} is invalid; give {expect}")


def unknown(name: str, value: Any, options: Iterable[str]) -> TransferlabError:
    """The one template for a name not among the choices: ``optimizer 'x' is unknown; valid: adam, sgd``."""
    return TransferlabError(f"{name} {value!r} is unknown{options_hint(str(value), tuple(options))}")


def parse_augment(text: str | None) -> tuple[str, ...]:
    """'mirror,noise' -> ('mirror', 'noise') in canonical order; None, '' or 'none' -> ()."""
    if text is None or text.strip().lower() in ("", "none"):
        return ()
    names = [t.strip().lower() for t in text.split(",") if t.strip()]
    for name in names:
        if name not in AUGMENTATIONS:
            raise TransferlabError(
                f"augmentation {name!r} is unknown{options_hint(name, AUGMENTATIONS)} (or none)"
            )
    if len(set(names)) != len(names):
        raise TransferlabError(f"augment={text!r} lists an augmentation twice")
    return tuple(a for a in AUGMENTATIONS if a in names)


def number(value: Any) -> bool:
    """A finite int or float (not a bool)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def whole(value: Any) -> bool:
    """An int (not a bool)."""
    return isinstance(value, int) and not isinstance(value, bool)


# Constraints, each with the phrase an error gives as the valid range.
def positive() -> tuple[Callable[[Any], bool], str]:
    return (lambda v: number(v) and v > 0), "a number > 0 (e.g. 1e-3)"


def at_least(minimum: int, why: str = "") -> tuple[Callable[[Any], bool], str]:
    return (lambda v: whole(v) and v >= minimum), f"a whole number >= {minimum}{why}"


def fraction(low_open: bool = True) -> tuple[Callable[[Any], bool], str]:
    if low_open:
        return (lambda v: number(v) and 0 < v <= 1), "a fraction in (0, 1]"
    return (lambda v: number(v) and 0 <= v < 1), "a value in [0, 1)"


@dataclass(frozen=True)
class Setting:
    """One RunSpec field. ``annotation`` is its type as text ("float | None"); ``valid``/``expect`` the
    constraint and how an error states it; ``choices`` the names it takes (instead of ``valid``); ``fill``
    the value ``RunSpec.resolved()`` gives it when unset on a strategy that takes it (a constant, or a
    function of the spec); ``note`` a clause added when a strategy that does not take it is given it."""

    name: str
    annotation: str
    default: Any
    help: str
    valid: Callable[[Any], bool] | None = None
    expect: str = ""
    choices: tuple[str, ...] = ()
    fill: Any = None
    note: str = ""

    def check(self, value: Any) -> None:
        """Raise the one-line error for a bad ``value`` (None means unset and passes when the default is None)."""
        if value is None and self.default is None:
            return
        if self.choices and value not in self.choices:
            raise unknown(self.name, value, self.choices)
        if self.valid is not None and not self.valid(value):
            raise invalid(self.name, value, self.expect)

    def given(self, value: Any) -> bool:
        """Whether ``value`` sets this setting (differs from its default)."""
        return value is not None and value != self.default

    def filled(self, spec: Any) -> Any:
        return self.fill(spec) if callable(self.fill) else self.fill


def setting(name: str, annotation: str, default: Any, help: str, constraint=None, **more) -> Setting:
    """A Setting with ``constraint`` = (valid, expect) from :func:`positive`, :func:`at_least`, ..."""
    valid, expect = constraint if constraint is not None else (None, "")
    return Setting(name, annotation, default, help, valid=valid, expect=expect, **more)
