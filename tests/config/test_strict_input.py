"""Every reproducer of issue 14 as a test with its exact one-line message (exit 2, no traceback),
run through the console-script entry point in this process (rlsim.fuzz.runner.invoke)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rlsim.fuzz.runner import invoke

TINY = ["--set", "workload.num_prompts_per_step=1", "--set", "workload.num_generations_per_prompt=2",
        "--set", "workload.max_new_tokens=64"]


@pytest.fixture
def here(tmp_path: Path, repo: Path) -> Path:
    for name in ("qwen8b_rollout.yaml", "qwen8b_rollout_eagle3.yaml", "qwen8b_sync.yaml", "qwen8b_async.yaml"):
        (tmp_path / name).write_text((repo / "scenarios" / name).read_text())
    return tmp_path


def error(folder: Path, *args: str) -> str:
    out = invoke(list(args), folder, 120)
    assert out.traceback is None and not out.hang, out.traceback
    assert out.code == 2, (out.code, out.stderr, out.stdout[-500:])
    lines = out.stderr_lines
    assert len(lines) == 1, out.stderr
    return lines[0]


def ok(folder: Path, *args: str):
    out = invoke(list(args), folder, 120)
    assert out.traceback is None and out.code == 0, (out.stderr, out.traceback)
    return out


def _with(folder: Path, name: str, text: str) -> str:
    (folder / "m.yaml").write_text((folder / name).read_text() + text)
    return "m.yaml"


# ---------------------------------------------------------------- tracebacks before

def test_yaml_nested_1000_deep(here):
    f = _with(here, "qwen8b_rollout.yaml", "extra: " + "[" * 1000 + "]" * 1000 + "\n")
    assert error(here, "run", f) == "error: m.yaml: line 48: nested deeper than 64 levels"


def test_a_list_as_a_mapping_key(here):
    f = _with(here, "qwen8b_rollout.yaml", "? [a, b]\n: 1\n")
    assert error(here, "run", f) == "error: m.yaml: line 48: a list cannot be a mapping key (keys are plain names)"


LONG = "a" * 300
SHORT = "'" + "a" * 60 + "'... (300 characters)"


def test_path_like_strings_over_255_characters(here):
    assert error(here, "run", LONG + ".yaml") == (
        f"error: scenario = '{'a' * 60}'... (305 characters) is too long for a file name (a part of 305 bytes; at most "
        "255 between slashes)")
    assert error(here, "run", "qwen8b_rollout.yaml", "--set", f"cluster.hardware={LONG}") == (
        f"error: qwen8b_rollout.yaml: cluster.hardware = {SHORT} is too long for a file name (a part of 300 bytes; "
        "at most 255 between slashes)")
    assert error(here, "profiles", "show", f"dir/{LONG}.yaml") == (
        f"error: profile = 'dir/{'a' * 56}'... (309 characters) is too long for a file name (a part of 305 bytes; "
        "at most 255 between slashes)")
    assert error(here, "run", "qwen8b_rollout.yaml", "--out", LONG) == (
        f"error: --out = {SHORT} is too long for a file name (a part of 300 bytes; at most 255 between slashes)")


@pytest.mark.parametrize("field,value,message", [
    ("workload.num_prompts_per_step", "1000000000000",
     "error: qwen8b_rollout.yaml: the run asks for 2,000,000,000,000 sequences x 663 tokens on 32 engines (work 1.1e+16 "
     "token-equivalents, ~13,108 days), above the limit of 1e+11 (shrink it, or raise the limit with --work-limit)"),
    ("workload.num_prompts_per_step", str(2**63),
     "error: qwen8b_rollout.yaml: workload.num_prompts_per_step = 9223372036854775808 is out of range (integers are at "
     "most 2**53 = 9,007,199,254,740,992)"),
    ("rollout.engine.max_cudagraph_capture_size", "1000000000000",
     "error: qwen8b_rollout.yaml: rollout.engine.max_cudagraph_capture_size = 1000000000000 input should be less than "
     "or equal to 65536"),
    ("cluster.num_gpus", "1000000000000",
     "error: qwen8b_rollout.yaml: cluster.num_gpus = 1000000000000 is more GPUs than rlsim simulates (at most 1,000,000)"),
    ("cluster.num_gpus", "10000000",
     "error: qwen8b_rollout.yaml: cluster.num_gpus = 10000000 is more GPUs than rlsim simulates (at most 1,000,000)"),
    ("workload.response_length.sigma", "1e200",
     "error: qwen8b_rollout.yaml: workload.response_length.sigma = 1e+200 is out of range (numbers are at most 1e15 in "
     "magnitude: inputs are in us, GiB, TB/s, ...)"),
    ("workload.response_length.sigma", "50",
     "error: qwen8b_rollout.yaml: workload.response_length.sigma = 50 input should be less than or equal to 10"),
    ("workload.prompt_length.max_tokens", "False",
     "error: qwen8b_rollout.yaml: workload.prompt_length.max_tokens = False input should be a valid integer"),
    ("workload.max_new_tokens", "1000000",
     "error: qwen8b_rollout.yaml: workload.max_new_tokens = 1000000 does not fit Qwen3-8B's context of "
     "max_position_embeddings = 40960 tokens (every response would be cut there; lower it, or set "
     "rollout.engine.max_model_len to cut responses on purpose)"),
    ("rollout.engine.activation_reserve_gib", "1e6",
     "error: qwen8b_rollout.yaml: rollout.engine.activation_reserve_gib = 1000000.0 alone exceeds what h100_sxm x "
     "gpu_memory_utilization 0.85 leaves per GPU (68.0 GiB), before any weights or KV cache"),
    ("rollout.engine.block_size", "true",
     "error: qwen8b_rollout.yaml: rollout.engine.block_size = True input should be one of 1, 8, 16, 32, 64, 128, 256 "
     "(a number, not true/false)"),
    ("rollout.engine.cpu_overhead.step_us", "1e200",
     "error: qwen8b_rollout.yaml: rollout.engine.cpu_overhead.step_us = 1e+200 is out of range (numbers are at most "
     "1e15 in magnitude: inputs are in us, GiB, TB/s, ...)"),
    ("rollout.engine.cpu_overhead.eager_layer_us", "-1",
     "error: qwen8b_rollout.yaml: rollout.engine.cpu_overhead.eager_layer_us = -1 input should be greater than or "
     "equal to 0"),
    ("rollout.engine.mxfp4_moe_activation", "fp8",
     "error: qwen8b_rollout.yaml: rollout.engine.mxfp4_moe_activation = 'fp8' input should be 'auto', 'bf16' or "
     "'mxfp8'"),
    ("rollout.engine.max_num_seqs", "2.0",
     "error: qwen8b_rollout.yaml: rollout.engine.max_num_seqs = 2.0 input should be a valid integer"),
    ("workload.prompt_length", "{kind: bogus}",
     "error: qwen8b_rollout.yaml: workload.prompt_length.kind = 'bogus' must be one of: fixed, lognormal, empirical"),
    ("workload.prompt_length", "{tokens: 3}",
     "error: qwen8b_rollout.yaml: workload.prompt_length.kind is required (one of: fixed, lognormal, empirical)"),
    ("rollout.engine.kv_cache_dtype", "x" * 100_000,
     "error: qwen8b_rollout.yaml: rollout.engine.kv_cache_dtype = " + "'" + "x" * 60 + "'... (100,000 characters) input "
     "should be 'auto', 'bf16' or 'fp8'"),
])
def test_rollout_reproducers(here, field, value, message):
    assert error(here, "run", "qwen8b_rollout.yaml", *TINY, "--set", f"{field}={value}") == message


def test_rl_reproducers(here):
    assert error(here, "run", "qwen8b_async.yaml", *TINY, "--set", "rl.reward_time_s=.inf") == (
        "error: qwen8b_async.yaml: rl.reward_time_s = inf must be a finite number")
    assert error(here, "run", "qwen8b_sync.yaml", *TINY, "--set", "rollout.engine.max_model_len=1000",
                 "--set", "workload.prompt_length={kind: fixed, tokens: 2000}") == (
        "error: qwen8b_sync.yaml: rollout.engine.max_model_len = 1000 leaves no room for a response to a 2000-token "
        "prompt (must exceed the longest prompt)")
    assert error(here, "run", "qwen8b_sync.yaml", *TINY, "--set", "rl.num_steps=1000000") == (
        "error: qwen8b_sync.yaml: the run asks for 2 sequences x 364 tokens x 1,000,000 steps x 2 runs (speculative + "
        "baselines) on 32 engines (work 1.9e+11 token-equivalents, ~5.2 h), above the limit of 1e+11 (shrink it, or "
        "raise the limit with --work-limit)")
    assert error(here, "run", "qwen8b_sync.yaml", *TINY, "--set", "rl.num_steps=3", "--set", "rl.warmup_steps=5") == (
        "error: qwen8b_sync.yaml: rl.num_steps = 3 must exceed the warm-up of 5 steps (no steady-state window left)")
    assert error(here, "run", "qwen8b_sync.yaml", *TINY, "--set", "rl.training.num_gpus=64") == (
        "error: qwen8b_sync.yaml: rl.training.num_gpus = 64 exceeds cluster.num_gpus = 32")
    assert error(here, "run", "qwen8b_sync.yaml", *TINY, "--set", "rl.training.train_global_batch_size=1000") == (
        "error: qwen8b_sync.yaml: rl.training.train_global_batch_size = 1000 exceeds the sequences of one step: "
        "workload.num_prompts_per_step x num_generations_per_prompt = 1 x 2 = 2")


def test_speculative_reproducers(here):
    s = "qwen8b_rollout_eagle3.yaml"
    spec = "rollout.engine.speculative_config"
    assert error(here, "run", s, *TINY, "--set", f"{spec}.acceptance.rate=true") == (
        f"error: {s}: {spec}.acceptance.rate = True input should be a valid number")
    assert error(here, "run", s, *TINY, "--set", f"{spec}.model=''") == (
        f"error: {s}: {spec}.model = '' must not be empty (omit it for the method's default)")
    assert error(here, "run", s, *TINY, "--set", f"{spec}.prompt_lookup_min=6", "--set", f"{spec}.prompt_lookup_max=3") \
        == f"error: {s}: {spec}.prompt_lookup_min = 6 must be <= prompt_lookup_max = 3"
    # a head trained for another target: vLLM loads the pair, so it runs, with the warning naming it
    out = ok(here, "run", s, *TINY, "--set", f"{spec}.model=EAGLE3-Llama-3.1-8B")
    assert "warning: EAGLE-3 head EAGLE3-Llama-3.1-8B: trained for target_model = 'Llama-3.1-8B', used with " \
           "'Qwen3-8B'" in out.stdout


def test_flags(here):
    assert error(here, "run", "qwen8b_rollout.yaml", *TINY, "--seeds", "100000", "--work-limit", "1e9") == (
        "error: qwen8b_rollout.yaml: the run asks for 2 sequences x 663 tokens x 100,000 seeds on 32 engines (work "
        "9.5e+09 token-equivalents, ~16 min), above the limit of 1e+09 (shrink it, or raise the limit with "
        "--work-limit)")
    assert error(here, "run", "qwen8b_rollout.yaml", "--set", "x" * 500) == (
        "error: --set '" + "x" * 60 + "'... (500 characters) must look like path.to.field=value")
    assert error(here, "run", "qwen8b_rollout.yaml", *TINY, "--baseline-mode", "bogus") == (
        "error: --baseline-mode = 'bogus' must be one of: no-spec, sync")
    assert error(here, "run", "qwen8b_rollout.yaml", *TINY, "--work-limit", "nan") == (
        "error: --work-limit = nan must be a finite number >= 0 (0 = no limit)")
    assert error(here, "sweep", "qwen8b_rollout.yaml", *TINY, "--grid", "seed=0..1000000000000", "--out", "r.parquet") == (
        "error: --grid 'seed=0..1000000000000': range 0..1000000000000 has 1,000,000,000,001 values, more than a sweep "
        "may have points (100,000)")
    assert error(here, "sweep", "qwen8b_rollout.yaml", *TINY, "--grid", "seed=0,1", "--out", "r.parquet") == (
        "error: --grid seed: seeds are swept with --seeds N (from --seed FIRST), not as an axis (every row already "
        "has a seed column)")


def test_billion_laughs_is_refused_fast(here):
    lol = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    prev = "a"
    for c in "bcdefghi":
        lol += f"{c}: &{c} [" + ",".join([f"*{prev}"] * 9) + "]\n"
        prev = c
    (here / "lol.yaml").write_text(lol)
    out = invoke(["run", "lol.yaml"], here, 20)
    assert out.stderr_lines == ["error: lol.yaml: expands to more than 1,000,000 values through its aliases (&/*)"]
    assert out.wall_s < 5


def test_nul_byte_and_not_utf8(here):
    (here / "n.yaml").write_bytes(b"name: a\x00b\n")
    assert error(here, "run", "n.yaml") == (
        "error: n.yaml: invalid YAML: character '\\x00' (position 7) is not allowed in YAML text")
    (here / "u.yaml").write_bytes(b"name: \xff\n")
    assert error(here, "run", "u.yaml") == "error: u.yaml: not UTF-8 text (byte 6): is this a YAML file?"
    (here / "e.yaml").write_bytes(b"")
    assert error(here, "run", "e.yaml") == "error: e.yaml: top level must be a mapping of keys, got nothing (an empty file)"


def test_merge_keys_are_supported(here):
    base = (here / "qwen8b_rollout.yaml").read_text()
    merged = base.replace("cluster:\n  hardware: h100_sxm", "_gpus: &gpus\n  num_gpus: 32\ncluster:\n  <<: *gpus\n"
                          "  hardware: h100_sxm").replace("  num_gpus: 32                # 4 nodes x 8 GPUs (assumed)\n", "")
    assert merged != base and "<<: *gpus" in merged
    (here / "merged.yaml").write_text(merged)
    a = json.loads(ok(here, "run", "merged.yaml", *TINY, "--json").stdout)
    b = json.loads(ok(here, "run", "qwen8b_rollout.yaml", *TINY, "--json").stdout)
    assert a == b


def test_out_not_writable_loses_nothing(here, monkeypatch):
    (here / "afile").write_text("x")
    assert error(here, "run", "qwen8b_rollout.yaml", *TINY, "--out", "afile") == (
        "error: --out = 'afile': exists and is not a folder")
    assert error(here, "run", "qwen8b_rollout.yaml", *TINY, "--out", "afile/sub") == (
        "error: --out = 'afile/sub': cannot write there (Not a directory)")
    # a failure while writing, after simulating: the printed report is saved and the message says where
    import rlsim.cli as cli

    def boom(result, out):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(cli, "_write_run_outputs", boom)
    line = error(here, "run", "qwen8b_rollout.yaml", *TINY, "--out", "res")
    assert line.startswith("error: --out = 'res': writing the results failed (No space left on device); the printed "
                           f"report is saved in {here}/rlsim-report-")
    saved = Path(line.rsplit(" ", 1)[1])
    assert saved.read_text().startswith("rollout: qwen8b_rollout: Qwen3-8B on 32 x h100_sxm (seed 0)")
    assert (here / "res" / "report.txt").read_text() == saved.read_text()
