"""Quantisation configs -> per-group storage dtypes (rlsim.models.quant), sidecars, exact errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rlsim.errors import ConfigError
from rlsim.models import Quantization, load_model, model_from_hf_config
from rlsim.models.quant import _matches
from rlsim.models.registry import catalog_entry
from rlsim.units import dtype_bytes

LLAMA = {
    "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 256, "intermediate_size": 512,
    "num_hidden_layers": 4, "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 1000,
    "max_position_embeddings": 4096,
}
HF_CONFIGS = Path(__file__).resolve().parents[2].parent / "shared" / "reference" / "hf_configs"


def _q(quant: dict, base: dict = LLAMA) -> Quantization:
    return model_from_hf_config({**base, "quantization_config": quant}, "m", "config.json").quantization


def _err(quant: dict, base: dict = LLAMA) -> str:
    with pytest.raises(ConfigError) as err:
        _q(quant, base)
    return str(err.value)


def test_bytes_per_weight_include_scales():
    assert dtype_bytes("fp8_block") == 1 + 4 / 16384
    assert dtype_bytes("fp4") == 0.5 + 1 / 16  # NVFP4: an e4m3 scale per 16 values
    assert dtype_bytes("mxfp4") * 8 == 4.25  # OpenAI's 4.25 bits
    assert dtype_bytes("int4_g32") == 0.5 + 2 / 32 and dtype_bytes("int4") == 0.5 + 2 / 128


def test_fp8_per_tensor_block_and_exclusions():
    q = _q({"quant_method": "fp8", "activation_scheme": "dynamic"})
    assert (q.dtype, q.attention, q.dense_mlp, q.router, q.head, q.weight_only) == ("fp8", "fp8", "fp8", "bf16", "bf16", False)
    q = _q({"quant_method": "fp8", "weight_block_size": [128, 128], "modules_to_not_convert": ["self_attn"]})
    assert (q.dtype, q.attention, q.dense_mlp) == ("fp8_block", "bf16", "fp8_block")


def test_plain_names_match_whole_dotted_components():
    assert _matches("gate", "model.layers.3.block_sparse_moe.gate")
    assert not _matches("gate", "model.layers.3.mlp.gate_proj")  # HF's substring test would match
    assert _matches("model.layers.*.self_attn", "model.layers.7.self_attn.q_proj")  # glob on a prefix
    assert not _matches("model.layers.1.self_attn*", "model.layers.10.mlp.down_proj")
    assert _matches("re:.*mlp\\.(gate|up|gate_up|down)_proj.*", "model.layers.0.mlp.gate_proj")
    assert not _matches("re:.*mlp\\.(gate|up|gate_up|down)_proj.*", "model.layers.3.mlp.experts.0.gate_proj")


def test_compressed_tensors_schemes():
    int4 = {"quant_method": "compressed-tensors", "config_groups": {"g": {
        "weights": {"num_bits": 4, "type": "int", "group_size": 64, "strategy": "group"}, "targets": ["Linear"]}},
        "ignore": ["lm_head", "re:.*self_attn.*"]}
    q = _q(int4)
    assert (q.dtype, q.attention, q.dense_mlp, q.weight_only) == ("int4_g64", "bf16", "int4_g64", True)
    fp8 = {"quant_method": "compressed-tensors", "config_groups": {"g": {
        "weights": {"num_bits": 8, "type": "float", "strategy": "channel"},
        "input_activations": {"num_bits": 8, "type": "float", "dynamic": True}, "targets": ["Linear"]}},
        "kv_cache_scheme": {"num_bits": 8, "type": "float"}}
    q = _q(fp8)
    assert (q.dtype, q.kv_cache_dtype, q.weight_only) == ("fp8", "fp8", False)
    # a group targeting only the MLP: attention stays bf16
    only_mlp = {"quant_method": "compressed-tensors", "config_groups": {"g": {
        "weights": {"num_bits": 4, "type": "float", "group_size": 16},
        "input_activations": {"num_bits": 4, "type": "float", "group_size": 16}, "targets": ["re:.*mlp.*"]}}}
    q = _q(only_mlp)
    assert (q.attention, q.dense_mlp) == ("bf16", "fp4")


def test_gptq_and_awq_are_int4_weight_only():
    q = _q({"quant_method": "gptq", "bits": 4, "group_size": 128, "desc_act": False})
    assert (q.dtype, q.attention, q.head, q.weight_only) == ("int4", "int4", "bf16", True)
    q = _q({"quant_method": "awq", "bits": 4, "group_size": 32, "modules_to_not_convert": ["o_proj"]})
    assert q.dtype == "int4_g32" and q.notes == ("attention: 12 of 16 modules int4_g32 (4 bf16); timed as int4_g32",)


def test_partly_excluded_group_is_timed_at_its_majority_and_says_so():
    q = _q({"quant_method": "fp8", "modules_to_not_convert": ["model.layers.0.mlp"]})
    assert q.dense_mlp == "fp8"
    assert q.notes == ("dense_mlp: 9 of 12 modules fp8 (3 bf16); timed as fp8",)


def test_mxfp4_quantises_only_the_experts():
    gpt = load_model("gpt-oss-120b")
    assert gpt.quantization.groups() == {"attention": "bf16", "dense_mlp": "bf16", "expert": "mxfp4",
                                         "shared_expert": "bf16", "draft_fc": "bf16", "router": "bf16", "head": "bf16"}


@pytest.mark.parametrize(
    ("quant", "message"),
    [
        ({"quant_method": "fp8", "weight_block_size": [64, 64]},
         "quantization_config.weight_block_size = [64, 64] is not supported (supported: [128, 128], null)"),
        ({"quant_method": "modelopt", "quant_algo": "W4A8_AWQ"},
         "quantization_config.quant_algo = 'W4A8_AWQ' is not supported (supported: FP8, NVFP4)"),
        ({"quant_method": "gptq", "bits": 8, "group_size": 128},
         "quantization_config.bits = 8 is not supported (supported: 4)"),
        ({"quant_method": "gptq", "bits": 4, "group_size": 48},
         "quantization_config.group_size = 48 is not supported (supported: 32, 64, 128, -1)"),
        ({"quant_method": "compressed-tensors", "config_groups": {"g": {"weights": {"num_bits": 8, "type": "int"}}}},
         "quantization_config.config_groups.g.weights = {'num_bits': 8, 'type': 'int', 'group_size': None} is not "
         "supported (supported: int 4-bit weight-only, float 8-bit, float 4-bit with group 16 or 32)"),
        ({"quant_method": "compressed-tensors", "config_groups": {}},
         "quantization_config.config_groups = {} must be a non-empty mapping of quantisation schemes"),
        ({"quant_method": "fp8", "kv_cache_scheme": {"num_bits": 4, "type": "int"}},
         "quantization_config.kv_cache_scheme = {'num_bits': 4, 'type': 'int'} is not supported "
         "(supported: 8-bit float, null)"),
        ({"quant_method": "fp8", "modules_to_not_convert": "lm_head"},
         "quantization_config.modules_to_not_convert = 'lm_head' must be a list of module names or patterns"),
        ({"quant_method": "fp8", "modules_to_not_convert": ["self_attn", "mlp"]},
         "quantization_config = 'fp8' quantises no linear layer of this model (every module is excluded)"),
    ],
)
def test_quantisation_errors_are_one_line(quant: dict, message: str):
    assert _err(quant) == f"config.json: {message}"


def test_quantisation_config_inside_text_config_names_its_path():
    wrapper = {"architectures": ["Gemma3ForConditionalGeneration"], "model_type": "gemma3",
               "text_config": {**LLAMA, "model_type": "gemma3_text", "quantization_config": {"quant_method": "gptq", "bits": 3}}}
    with pytest.raises(ConfigError) as err:
        model_from_hf_config(wrapper, "m", "config.json")
    assert str(err.value) == "config.json: text_config.quantization_config.bits = 3 is not supported (supported: 4)"


def _minimax_nvfp4(tmp_path: Path) -> tuple[dict, dict]:
    """The NVFP4 MiniMax config without its quantization_config, and its hf_quant_config.json."""
    if not (HF_CONFIGS / "nvidia--MiniMax-M2.5-NVFP4.hf_quant_config.json").is_file():
        pytest.skip("../shared/reference/hf_configs not present")
    config = json.loads((HF_CONFIGS / "nvidia--MiniMax-M2.5-NVFP4.json").read_text())
    config.pop("quantization_config")
    return config, json.loads((HF_CONFIGS / "nvidia--MiniMax-M2.5-NVFP4.hf_quant_config.json").read_text())


def test_hf_quant_config_beside_the_config_supplies_the_scheme(tmp_path: Path):
    config, side = _minimax_nvfp4(tmp_path)
    (tmp_path / "minimax.json").write_text(json.dumps(config))
    (tmp_path / "minimax.hf_quant_config.json").write_text(json.dumps(side))
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    (ckpt / "config.json").write_text(json.dumps(config))
    (ckpt / "hf_quant_config.json").write_text(json.dumps(side))
    catalog = load_model("MiniMax-M2.5-NVFP4").quantization
    for path in (tmp_path / "minimax.json", ckpt):
        q = load_model(str(path)).quantization
        assert q.groups() == catalog.groups() and q.kv_cache_dtype == "fp8" and q.method == "modelopt"
    (tmp_path / "minimax.hf_quant_config.json").unlink()
    assert load_model(str(tmp_path / "minimax.json")).weight_dtype == "bf16"  # no sidecar, no quantisation


def test_hf_quant_config_disagreeing_with_the_config_is_an_error(tmp_path: Path):
    side = {"quantization": {"quant_algo": "FP8", "exclude_modules": ["lm_head"]}}
    (tmp_path / "m.json").write_text(json.dumps({**catalog_entry("Llama-3.1-70B-NVFP4")}))
    (tmp_path / "m.hf_quant_config.json").write_text(json.dumps(side))
    with pytest.raises(ConfigError) as err:
        load_model(str(tmp_path / "m.json"))
    assert str(err.value) == (f"{tmp_path / 'm.json'}: quantization_config.quant_algo = 'NVFP4' disagrees with "
                              f"{tmp_path / 'm.hf_quant_config.json'} quantization.quant_algo = 'FP8'")
    (tmp_path / "m.hf_quant_config.json").write_text(json.dumps({"quantization": "FP8"}))
    with pytest.raises(ConfigError) as err:
        load_model(str(tmp_path / "m.json"))
    assert str(err.value) == (f"{tmp_path / 'm.hf_quant_config.json'}: quantization = 'FP8' must be a mapping "
                              "(ModelOpt hf_quant_config.json)")


def test_uniform_override_and_quantization_for():
    q8 = load_model("Qwen3-8B")
    assert q8.quantization_for(None) is q8.quantization
    over = q8.quantization_for("fp8_block")
    assert (over.attention, over.dense_mlp, over.router, over.head, over.method) == (
        "fp8_block", "fp8_block", "bf16", "bf16", "override")
    gpt = load_model("gpt-oss-120b")
    assert gpt.quantization_for("mxfp4") is gpt.quantization  # the model's own dtype: its own scheme
    with pytest.raises(ConfigError) as err:
        q8.quantization_for("int3")
    assert str(err.value).startswith("dtype = 'int3' is not a known dtype (known: fp32, bf16")
