"""Resolving model names, HF ids and config.json paths; exact error messages."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rlsim.catalog import catalog_dir, model_files
from rlsim.errors import ConfigError
from rlsim.models import ModelArch, list_models, load_model, model_from_hf_config
from rlsim.models.registry import catalog_entry

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
HF_CONFIGS = SHARED / "reference" / "hf_configs"
CATALOG = ", ".join(list_models())

LLAMA = {
    "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 256, "intermediate_size": 512,
    "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 1000,
    "max_position_embeddings": 4096,
}


def _physical(model: ModelArch) -> dict:
    return model.model_dump(exclude={"name"})


def _reference_files() -> list[Path]:
    """The reference config.json files (ModelOpt ``*.hf_quant_config.json`` sidecars excluded)."""
    if not HF_CONFIGS.is_dir():
        pytest.skip("../shared/reference/hf_configs not present")
    return sorted(p for p in HF_CONFIGS.glob("*.json") if not p.name.endswith(".hf_quant_config.json"))


def test_catalog_dir_holds_one_json_per_model() -> None:
    assert sorted(model_files()) == list_models()
    assert catalog_dir().joinpath("Qwen3-8B.json").is_file()
    assert catalog_entry("Qwen3-8B")["_source"]


@pytest.mark.parametrize("alias", ["Qwen3-8B", "qwen3-8b", "QWEN3-8B", "Qwen/Qwen3-8B", "qwen/qwen3-8b", "someorg/Qwen3-8B"])
def test_names_and_hf_ids_resolve(alias: str) -> None:
    assert load_model(alias).name == "Qwen3-8B"


@pytest.mark.parametrize(
    ("hf_id", "name"),
    [
        ("meta-llama/Meta-Llama-3.1-8B", "Llama-3.1-8B"),
        ("meta-llama/Llama-3.1-70B-Instruct", "Llama-3.1-70B"),
        ("deepseek-ai/DeepSeek-V3", "DeepSeek-V3"),
        ("yuhuili/EAGLE3-LLaMA3.1-Instruct-8B", "EAGLE3-Llama-3.1-8B"),
    ],
)
def test_hf_id_aliases(hf_id: str, name: str) -> None:
    assert load_model(hf_id).name == name


def test_reference_configs_match_the_catalog() -> None:
    """Every reference config loads and equals its catalog entry (found by its HF id), the
    quantisation included; the MiniMax NVFP4 config is read with its hf_quant_config.json."""
    files = _reference_files()
    matched = set()
    for path in files:
        from_file = load_model(str(path))
        from_catalog = load_model(path.stem.replace("--", "/"))
        assert _physical(from_file) == _physical(from_catalog), path.name
        assert from_file.total_params == from_catalog.total_params
        assert from_file.kv_bytes_per_token() == from_catalog.kv_bytes_per_token()
        assert from_file.weight_bytes() == from_catalog.weight_bytes()
        matched.add(from_catalog.name)
    assert len(matched) == len(files)
    assert {"gpt-oss-120b", "MiniMax-M2.5", "MiniMax-M2.5-NVFP4", "Kimi-K2.5", "Kimi-K2.5-NVFP4"} <= matched


@pytest.mark.parametrize(
    ("name", "groups", "kv"),
    [
        ("gpt-oss-120b", {"attention": "bf16", "expert": "mxfp4", "router": "bf16", "head": "bf16"}, None),
        ("MiniMax-M2.5", {"attention": "fp8_block", "expert": "fp8_block", "router": "bf16", "head": "bf16"}, None),
        ("MiniMax-M2.5-NVFP4", {"attention": "bf16", "expert": "fp4", "router": "bf16", "head": "bf16"}, "fp8"),
        ("Kimi-K2.5", {"attention": "bf16", "dense_mlp": "bf16", "expert": "int4_g32", "shared_expert": "bf16"}, None),
        ("Kimi-K2.5-NVFP4", {"attention": "bf16", "dense_mlp": "fp4", "expert": "fp4", "shared_expert": "fp4"}, "fp8"),
        ("Llama-3.1-70B-FP8", {"attention": "fp8", "dense_mlp": "fp8", "head": "bf16"}, None),
        ("Llama-3.1-70B-NVFP4", {"attention": "fp4", "dense_mlp": "fp4", "head": "bf16"}, None),
        ("DeepSeek-V3", {"attention": "fp8_block", "expert": "fp8_block", "router": "bf16"}, None),
    ],
)
def test_catalog_quantisation_schemes(name: str, groups: dict, kv: str | None) -> None:
    q = load_model(name).quantization
    assert {g: q.dtype_of(g) for g in groups} == groups
    assert q.kv_cache_dtype == kv


def test_config_json_in_a_directory(tmp_path: Path) -> None:
    folder = tmp_path / "tiny-llama"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(LLAMA))
    by_dir = load_model(str(folder))
    by_file = load_model(str(folder / "config.json"))
    assert by_dir == by_file and by_dir.name == "tiny-llama"
    assert by_dir.head_dim == 64  # hidden / heads when head_dim is missing
    assert by_dir.total_params == 2 * 1000 * 256 + 256 + 2 * (256 * 512 + 256 * 256 + 3 * 256 * 512 + 2 * 256)


def test_unknown_name_suggests_the_closest() -> None:
    with pytest.raises(ConfigError) as err:
        load_model("Qwen9-8B")
    assert str(err.value) == f"model = 'Qwen9-8B' is not a catalog model or a file (did you mean 'Qwen3-8B'?; catalog: {CATALOG})"


def test_unknown_name_without_suggestion() -> None:
    with pytest.raises(ConfigError) as err:
        load_model("zzz")
    assert str(err.value) == f"model = 'zzz' is not a catalog model or a file (catalog: {CATALOG})"


@pytest.mark.parametrize("value", ["x/config.json", "missing.json", "org/Unknown-Model"])
def test_missing_file(value: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_model(value)
    assert str(err.value) == f"model = {value!r}: file not found"


def test_invalid_json_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"hidden_size": 4096,,}')
    with pytest.raises(ConfigError) as err:
        load_model(str(bad))
    assert str(err.value) == f"{bad}: invalid JSON at line 1 column 22: Expecting property name enclosed in double quotes"
    bad.write_text("[1, 2]")
    with pytest.raises(ConfigError) as err:
        load_model(str(bad))
    assert str(err.value) == f"{bad}: top level must be a JSON object, got list"


SUPPORTED = "deepseek_v3, gemma, gemma2, gemma3_text, gpt_oss, kimi_k2, llama, minimax_m2, mistral, qwen2, qwen3, qwen3_moe"


def test_unsupported_model_type() -> None:
    with pytest.raises(ConfigError) as err:
        model_from_hf_config({**LLAMA, "model_type": "gpt2"}, "m", "config.json")
    assert str(err.value) == f"config.json: model_type = 'gpt2' is not supported (supported: {SUPPORTED})"
    with pytest.raises(ConfigError) as err:  # a multimodal wrapper whose text model is unsupported
        model_from_hf_config({"model_type": "llava", "text_config": {**LLAMA, "model_type": "gpt2"}}, "m", "config.json")
    assert str(err.value) == f"config.json: text_config.model_type = 'gpt2' is not supported (supported: {SUPPORTED})"


def test_missing_model_type() -> None:
    config = {k: v for k, v in LLAMA.items() if k != "model_type"}
    with pytest.raises(ConfigError) as err:
        model_from_hf_config(config, "m", "config.json")
    assert str(err.value) == f"config.json: model_type is missing (supported: {SUPPORTED})"


def test_missing_required_field() -> None:
    config = {k: v for k, v in LLAMA.items() if k != "hidden_size"}
    with pytest.raises(ConfigError) as err:
        model_from_hf_config(config, "m", "config.json")
    assert str(err.value) == "config.json: hidden_size is missing (required for model_type 'llama')"


def test_missing_moe_field_and_source_defaults_to_name() -> None:
    config = catalog_entry("Qwen3-30B-A3B")
    del config["num_experts"]
    with pytest.raises(ConfigError) as err:
        model_from_hf_config(config, "my-moe")
    assert str(err.value) == "my-moe: num_experts is missing (required for model_type 'qwen3_moe')"


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("hidden_size", "4096", "config.json: hidden_size = '4096' must be a positive integer"),
        ("num_hidden_layers", 0, "config.json: num_hidden_layers = 0 must be a positive integer"),
        ("num_key_value_heads", 3, "config.json: num_key_value_heads = 3 does not divide num_attention_heads = 4"),
        ("tie_word_embeddings", "no", "config.json: tie_word_embeddings = 'no' must be true or false"),
        (
            "quantization_config",
            {"quant_method": "bitsandbytes"},
            "config.json: quantization_config.quant_method = 'bitsandbytes' is not supported "
            "(supported: awq, compressed-tensors, fp8, gptq, modelopt, mxfp4)",
        ),
    ],
)
def test_bad_values(key: str, value: object, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        model_from_hf_config({**LLAMA, key: value}, "m", "config.json")
    assert str(err.value) == message


def test_head_dim_default_needs_divisible_hidden() -> None:
    with pytest.raises(ConfigError) as err:
        model_from_hf_config({**LLAMA, "num_attention_heads": 3, "num_key_value_heads": 3}, "m", "config.json")
    assert str(err.value) == "config.json: hidden_size = 256 is not divisible by num_attention_heads = 3 (and head_dim is missing)"


def test_qwen3_moe_mlp_only_layers_and_sparse_step() -> None:
    config = {**catalog_entry("Qwen3-30B-A3B"), "mlp_only_layers": [0, 1], "decoder_sparse_step": 2}
    model = model_from_hf_config(config, "m")
    # MoE layers: odd i ((i + 1) % 2 == 0) not in mlp_only_layers -> 3, 5, ..., 47 = 23 layers
    assert (model.num_moe_layers, model.num_dense_layers) == (23, 25)


def test_eagle3_head_dict() -> None:
    head = {
        "architectures": ["LlamaForCausalLMEagle3"], "model_type": "llama", "hidden_size": 2048, "intermediate_size": 12288,
        "num_hidden_layers": 1, "num_attention_heads": 32, "num_key_value_heads": 4, "head_dim": 128,
        "vocab_size": 151936, "draft_vocab_size": 32000, "max_position_embeddings": 2048, "target_model": "Qwen3-30B-A3B",
        "_source": "SpecForge qwen3-30B-A3B-eagle3.1.json",
    }
    model = model_from_hf_config(head, "EAGLE3-Qwen3-30B-A3B", "head.json")
    assert (model.kind, model.target_model, model.qk_norm) == ("eagle3_head", "Qwen3-30B-A3B", False)
    assert _rel_ok(model.total_params / 1e9, 0.2, 0.1)  # B3: ~0.2B
    with pytest.raises(ConfigError) as err:
        model_from_hf_config({**head, "num_hidden_layers": 2}, "h", "head.json")
    assert str(err.value) == "head.json: num_hidden_layers = 2 must be 1 for an EAGLE-3 head"


def _rel_ok(a: float, b: float, tol: float) -> bool:
    return abs(a - b) / b < tol
