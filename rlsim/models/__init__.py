"""Model architectures: shapes, exact parameter counts, KV-cache size and per-layer GEMM shapes.

Public API::

    load_model("Qwen3-8B" | "Qwen/Qwen3-8B" | "path/to/config.json") -> ModelArch
    list_models() -> list[str]
    model_from_hf_config(config: dict, name: str, source: str | None = None) -> ModelArch
    describe(model: ModelArch) -> dict
    draft_target_warnings(draft: ModelArch, target: ModelArch) -> tuple[str, ...]
    Quantization: storage dtype per group of linear weights (ModelArch.quantization)
"""

from rlsim.models.arch import LinearWeight, ModelArch
from rlsim.models.compat import draft_target_warnings
from rlsim.models.describe import describe
from rlsim.models.hf import SUPPORTED_MODEL_TYPES, model_from_hf_config
from rlsim.models.quant import Quantization
from rlsim.models.registry import catalog_source, list_models, load_model

__all__ = [
    "ModelArch",
    "LinearWeight",
    "load_model",
    "list_models",
    "model_from_hf_config",
    "describe",
    "catalog_source",
    "SUPPORTED_MODEL_TYPES",
    "Quantization",
    "draft_target_warnings",
]
