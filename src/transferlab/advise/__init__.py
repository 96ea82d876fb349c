"""Advice before training: transferability scores (``scores``), dataset similarity and the
size-similarity matrix (``similarity``), candidate sources (``sources``), the ranking and recommendation
(``advisor``) and the learning-curve model (``curves``)."""

from transferlab.advise.advisor import Advice, advise, recommend, validate
from transferlab.advise.sources import SourceSettings

__all__ = ["Advice", "SourceSettings", "advise", "recommend", "validate"]
