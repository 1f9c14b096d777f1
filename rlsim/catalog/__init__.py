"""Package data: one JSON file per catalog model (HF ``config.json`` fields).

Each ``<Name>.json`` holds the fields rlsim reads from the model's Hugging Face config, plus
annotations whose keys start with ``_`` and are ignored by parsing: ``_source`` (where the
numbers come from, shown by ``models show``), ``_comment`` (assumptions), ``_hf_ids`` (HF repo
ids that resolve to this entry).  The file stem is the catalog name.
"""

from __future__ import annotations

from importlib.resources import files
from importlib.resources.abc import Traversable

__all__ = ["catalog_dir", "model_files"]


def catalog_dir() -> Traversable:
    """The directory of catalog files inside the installed package."""
    return files(__name__)


def model_files() -> dict[str, Traversable]:
    """Catalog name (file stem) -> the model's JSON file."""
    return {f.name.removesuffix(".json"): f for f in catalog_dir().iterdir() if f.name.endswith(".json")}
