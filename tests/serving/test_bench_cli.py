"""rlsim bench and the e2e commands on the command line: vLLM's flags, report, JSON and errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rlsim.cli import app

runner = CliRunner()
FLAGS = ["--model", "Qwen3-0.6B", "--hardware", "h100_sxm", "--num-prompts", "24", "--max-concurrency", "4",
         "--random-input-len", "128", "--random-output-len", "32"]


def _main(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", "from rlsim.cli import main; main()", *args], capture_output=True,
                          text=True, timeout=300)


def _error(args: list[str]) -> str:
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_bench_prints_vllms_report_and_saves_its_keys(tmp_path: Path):
    out = tmp_path / "r.json"
    result = runner.invoke(app, ["bench", *FLAGS, "--save-result", str(out)])
    assert result.exit_code == 0, result.output
    assert "============ Serving Benchmark Result ============" in result.stdout
    assert "Successful requests:                     24" in result.stdout
    saved = json.loads(out.read_text())
    assert saved["completed"] == 24 and saved["max_concurrency"] == 4 and "median_tpot_ms" in saved


def test_bench_from_a_scenario_with_flag_overrides(tmp_path: Path):
    scen = tmp_path / "b.yaml"
    scen.write_text("name: b\ncluster: {hardware: h100_sxm, num_gpus: 1}\nmodel: {name: Qwen3-0.6B}\n"
                    "serving: {num_prompts: 10, random_input_len: 64, random_output_len: 16}\n")
    result = runner.invoke(app, ["bench", str(scen), "--num-prompts", "6", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["completed"] == 6


def test_unknown_flag_suggests_the_vllm_flag():
    r = _main(["bench", *FLAGS, "--max-concurency", "8"])
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines() == ["error: No such option: --max-concurency (Possible options: "
                                             "--max-concurrency, --max-num-seqs)"]


@pytest.mark.parametrize("extra,message", [
    (["--tensor-parallel-size", "3"], "error: --tensor-parallel-size = 3 does not divide num_attention_heads = 16"),
    (["--random-output-len", "0"], "error: --random-output-len = 0 input should be greater than or equal to 1"),
    (["--max-model-len", "100"], "error: --max-model-len = 100 is shorter than the longest request: 128 prompt + 32 "
                                 "output tokens (vLLM rejects it)"),
    (["--speculative-config", "{bad"], "error: --speculative-config = '{bad' is not JSON (Expecting property name "
                                       "enclosed in double quotes)"),
    (["--quantization", "awq"], "error: --quantization = 'awq' is not simulated (known: fp8; a checkpoint's own "
                                "quantization comes from its config)"),
])
def test_bench_errors_name_the_flag(extra, message):
    assert _error(["bench", *FLAGS, *extra]) == message


def test_bench_without_model_says_so():
    assert _error(["bench", "--hardware", "h100_sxm"]) == "error: --model is required without a scenario file"


def test_measurement_file_errors(tmp_path: Path):
    bad = tmp_path / "m.csv"
    bad.write_text("id,model,system\nx,m,h100_sxm\n")
    msg = _error(["calibrate", "e2e-check", "--measurements", str(bad)])
    assert msg.startswith(f"error: {bad}: missing columns vllm_version, precision, gemm_quant_mode")
    cols = "id,vllm_version,model,system,precision,gemm_quant_mode,moe_quant_mode,isl,osl,concurrency,tp,pp," \
           "attention_dp,moe_tp,moe_ep,ttft_ms,tpot_ms\n"
    bad.write_text(cols + "x,0.19.0,Qwen/Qwen3-8B,h100_sxm,bf16,,,128,32,4,1,1,1,1,1,50,-3\n")
    assert _error(["calibrate", "e2e-check", "--measurements", str(bad)]) == \
        f"error: {bad}: row 2: tpot_ms = -3.0 must be a positive time in ms"
    assert _error(["calibrate", "e2e-check", "--measurements", str(tmp_path / "none.csv")]) == \
        f"error: --measurements = '{tmp_path / 'none.csv'}': not a file or folder"
