"""Which measured rows have catalog-model shapes (rlsim.calibration.relevant)."""

from __future__ import annotations

import pandas as pd

from rlsim.calibration.relevant import relevant_mask

GPT_OSS = (2880, 2880, 128, 4)  # a catalog model's MoE layer
OTHER = (4096, 2048, 256, 6)  # no catalog model has it


def _moe(dtype: str, shape: tuple, tokens: int = 64, distribution: str = "balanced") -> dict:
    h, i, e, k = shape
    return {"op_class": "moe", "dtype": dtype, "hidden_size": h, "inter_size": i, "num_experts": e, "topk": k,
            "moe_tp": 1, "moe_ep": 1, "num_tokens": tokens, "distribution": distribution}


def test_a_moe_kernel_seen_on_no_catalog_shape_keeps_its_shapes():
    """MXFP4 x MXFP8 is measured only on other layer shapes: its rows stay (else the kernel has
    no calibration); a dtype that has a catalog shape keeps only those; the other rules still apply."""
    df = pd.DataFrame([_moe("mxfp4_mxfp8", OTHER), _moe("mxfp4", GPT_OSS), _moe("mxfp4", OTHER),
                       _moe("mxfp4_mxfp8", OTHER, tokens=32768), _moe("mxfp4_mxfp8", OTHER, distribution="power_law_1.01")])
    assert relevant_mask(df).tolist() == [True, True, False, False, False]
