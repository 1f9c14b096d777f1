"""End-to-end validation cases: measured ``vllm bench serve`` runs (``shared/e2e``), one per
model, each simulated with the profile's engine overheads: independent checks where those are
assumed (no end-to-end fit) or, after ``rlsim calibrate e2e --heldout``, fitted **without that
model** (the ``engine.fit.held_out_params`` it stores); a calibration case where the profile was
fitted on the rows without held-out parameters.  The description says which.  Cases whose
measurement file is absent are left out.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["E2E_CASES", "e2e_cases", "measurements_path"]

#: (case name, system, model id, precision, isl, osl, concurrency, tp): one mid-load 1k / 1k run
#: per model, on the system with the most rows of it.
E2E_CASES = (
    ("e2e_h100_llama70b_fp8_tp4_c32_tpot_ms", "h100_sxm", "meta-llama/Llama-3.1-70B", "fp8", 1024, 1024, 32, 4),
    ("e2e_h200_gptoss120b_tp2_c32_tpot_ms", "h200_sxm", "openai/gpt-oss-120b", "fp4", 1024, 1024, 32, 2),
    ("e2e_b200_minimax_fp8_tp4_c64_tpot_ms", "b200_sxm", "MiniMaxAI/MiniMax-M2.5", "fp8", 1024, 1024, 64, 4),
    ("e2e_h200_kimi_int4_tp8_c32_tpot_ms", "h200_sxm", "moonshotai/Kimi-K2.5", "int4", 1024, 1024, 32, 8),
)


def measurements_path() -> Path:
    """``<repo>/../shared/e2e/vllm_serving_measured.csv``."""
    import rlsim

    return Path(rlsim.__file__).resolve().parents[2] / "shared" / "e2e" / "vllm_serving_measured.csv"


def _find(runs, system, model, precision, isl, osl, c, tp):
    for r in runs:
        if (r.system, r.model, r.precision, r.isl, r.osl, r.concurrency, r.tp, r.attention_dp) == \
                (system, model, precision, isl, osl, c, tp, 1):
            return r
    return None


def _simulate(run) -> float:
    from rlsim.calibration.e2e import profile_overheads, simulate_row
    from rlsim.hardware import load_profile

    overheads = profile_overheads(run.system)
    held = (load_profile(run.system).engine.fit or {}).get("held_out_params", {}).get(run.model)
    return simulate_row(run, None, overheads=overheads | (held or {})).sim_tpot_ms


def _how(fit: dict | None, model: str) -> str:
    """What a case's engine overheads are: assumed (no end-to-end fit: an independent check),
    fitted without the case's model (independent), or fitted with it (a calibration case)."""
    if fit is None:
        return "engine overheads assumed, not fitted to these runs: an independent check"
    if fit.get("held_out_params", {}).get(model):
        return f"engine overheads fitted without {model.split('/')[-1]}: an independent check"
    return "engine overheads fitted on these runs: a calibration case"


def e2e_cases(case_type):
    """The cases available here (``case_type``: rlsim.validation.Case)."""
    path = measurements_path()
    if not path.is_file():
        return []
    from rlsim.hardware import load_profile
    from rlsim.serving.measured import read_measurements

    runs = read_measurements(path)
    out = []
    for name, system, model, precision, isl, osl, c, tp in E2E_CASES:
        run = _find(runs, system, model, precision, isl, osl, c, tp)
        if run is None:
            continue
        how = _how(load_profile(system).engine.fit, model)
        out.append(case_type(name, f"shared/e2e row {run.id}", f"{model.split('/')[-1]} {precision} TP{tp} on {system}, "
                             f"{isl}/{osl} tokens, concurrency {c}: TPOT ms ({how})", run.tpot_ms, 0.8 * run.tpot_ms,
                             1.2 * run.tpot_ms, lambda run=run: _simulate(run), "+-20 %",
                             "calibration" if how.endswith("a calibration case") else "independent"))
    return out
