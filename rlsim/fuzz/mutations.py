"""Seeded mutations of the shipped scenarios and of the command line.

Every case says what a correct ``rlsim`` must do with it (:attr:`Case.expect`):

* ``invalid`` -- input that breaks a stated rule *by construction*: a bool or a string or a
  list where the scenario had a number, a fraction where the field is an integer, ``.inf`` /
  ``.nan``, an integer beyond 2**53, a float beyond 1e15, an unknown or misspelt key, a section replaced by a
  value, a duplicate or composite key, YAML nested 1,000 deep or a "billion laughs", a NUL
  byte, non-UTF-8 bytes, an empty file, a path over 255 bytes in a path field, a broken
  cross-field rule (warm-up >= steps, prompt_lookup_min > max, training GPUs beyond the
  cluster, a global batch larger than the step's sequences, an empty drafter name, responses
  longer than the model's context, a prompt longer than max_model_len), work above the
  limit, a bad flag value.  Exit 0 on such a case is a **silent acceptance**;
* ``valid`` -- input that must run: the scenario itself (shrunk), merge keys, comments and
  reordered keys, integers where a float is expected, ``--json``, ``--no-baseline``, ``--out``
  a fresh folder.  Exit 2 on it is a **wrong rejection**;
* ``warned`` -- accepted with a warning naming the problem (``Case.warning``): an EAGLE-3 head
  trained for another target model (vLLM loads such pairs; acceptance is the user's model).
  Exit 0 without the warning is a silent acceptance;
* ``either`` -- may run or be refused (a negative number, a zero, a deleted key, a scaled
  value, a truncated file): only the universal rules apply (exit 0 or 2, one stderr line on
  exit 2, no traceback, within the time bound, finite numbers).

The base documents are the shipped scenarios shrunk to a tiny workload (1 prompt x 2 samples,
64 new tokens) so that a valid case simulates in well under a second.
"""

from __future__ import annotations

import copy
import json
import math
import random
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

__all__ = ["Case", "make_case", "base_documents", "TINY", "WORK_LIMIT"]

#: Overrides that shrink a shipped scenario to a tiny workload.
TINY = {"workload.num_prompts_per_step": 1, "workload.num_generations_per_prompt": 2, "workload.max_new_tokens": 64}
#: The fuzzer's --work-limit (token-equivalents, ~10 s): a mutation may multiply the work by millions.
WORK_LIMIT = "1e8"
_PATH_FIELDS = ("cluster.hardware", "cluster.kernel_tables", "model.name", "rollout.engine.speculative_config.model")


@dataclass
class Case:
    """One fuzz case: files to write, the command line, and what must happen."""

    mutation: str
    scenario: str
    args: list[str]
    files: dict[str, bytes] = field(default_factory=dict)
    expect: str = "either"          # invalid | valid | warned | either
    warning: str | None = None      # for expect == "warned"
    detail: str = ""


def _set(doc: dict, dotted: str, value) -> None:
    cur = doc
    parts = dotted.split(".")
    for p in parts[:-1]:
        cur = cur.setdefault(p, {})
    cur[parts[-1]] = value


def _get(doc, dotted: str):
    cur = doc
    for p in dotted.split("."):
        if not isinstance(cur, dict) or p not in cur:
            return None
        cur = cur[p]
    return cur


def _absolute_paths(doc, folder: Path):
    """``doc`` with every string naming a file or folder beside the scenario (a model's
    ``config.json`` folder, a lengths file) made absolute: cases run from a temporary folder."""
    if isinstance(doc, dict):
        return {k: _absolute_paths(v, folder) for k, v in doc.items()}
    if isinstance(doc, list):
        return [_absolute_paths(v, folder) for v in doc]
    if isinstance(doc, str) and "/" in doc and not Path(doc).is_absolute() and (folder / doc).exists():
        return str((folder / doc).resolve())
    return doc


def base_documents(repo: Path) -> dict[str, dict]:
    """Every shipped scenario, shrunk with :data:`TINY` (name -> document)."""
    from rlsim._yaml import read_yaml_mapping

    out = {}
    for path in sorted((repo / "scenarios").glob("*.yaml")):
        doc = _absolute_paths(read_yaml_mapping(path, "scenario"), path.parent)
        if doc.get("workload") is not None:
            for k, v in TINY.items():
                _set(doc, k, v)
        out[path.name] = doc
    return out


# ---------------------------------------------------------------- field types (for "invalid")

def _annotations_at(parts: list) -> list:
    """Annotations of the Scenario fields at ``parts`` (union members all kept)."""
    from rlsim._pydantic_errors import annotations_at
    from rlsim.config import Scenario

    return annotations_at(Scenario, parts, mapping_keys=False)


def _base_types(ann) -> set:
    origin = typing.get_origin(ann)
    if origin is typing.Annotated:
        return _base_types(typing.get_args(ann)[0])
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", typing.Union)):
        return {t for a in typing.get_args(ann) for t in _base_types(a)}
    if origin is typing.Literal:
        return {type(a) for a in typing.get_args(ann)}
    return {origin or ann}


def _kinds(parts: list) -> set:
    return {t for a in _annotations_at(parts) for t in _base_types(a)}


def _only(parts: list, allowed: set) -> bool:
    kinds = _kinds(parts) - {type(None)}
    return bool(kinds) and kinds <= allowed


# ---------------------------------------------------------------- document walks

def _leaves(doc, parts=()) -> list[tuple[list, object]]:
    out = []
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += _leaves(v, (*parts, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out += _leaves(v, (*parts, i))
    else:
        out.append((list(parts), doc))
    return out


def _mappings(doc, parts=()) -> list[list]:
    out = [list(parts)] if isinstance(doc, dict) else []
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += _mappings(v, (*parts, k))
    return out


def _put(doc, parts: list, value) -> None:
    cur = doc
    for p in parts[:-1]:
        cur = cur[p]
    cur[parts[-1]] = value


def _dump(doc) -> bytes:
    return yaml.safe_dump(doc, sort_keys=False, allow_unicode=True).encode("utf-8")


def _numbers(doc) -> list[tuple[list, object]]:
    return [(p, v) for p, v in _leaves(doc) if isinstance(v, (int, float)) and not isinstance(v, bool)]


# ---------------------------------------------------------------- value mutations

def _value_case(rng: random.Random, doc: dict) -> tuple[str, dict, str, str]:
    """(mutation, mutated document, expectation, detail)."""
    doc = copy.deepcopy(doc)
    nums = _numbers(doc)
    strings = [(p, v) for p, v in _leaves(doc) if isinstance(v, str)]
    kind = rng.choice(["bool", "fraction", "non_finite", "string", "container", "huge", "beyond_2_53", "negative",
                       "zero", "scale", "extreme_float", "null", "long_string", "empty_string", "int_for_float",
                       "nul_string"])
    if kind in ("long_string", "empty_string", "nul_string") and strings:
        parts, old = rng.choice(strings)
        dotted = ".".join(map(str, parts))
        if kind == "long_string":
            new = rng.choice(["a" * 300, "dir/" * 1100, "x" * 100_000, "../" + "b" * 256 + ".yaml"])
            expect = "invalid" if dotted in _PATH_FIELDS else "either"
        elif kind == "empty_string":
            new, expect = "", "invalid" if dotted in ("name", "rollout.engine.speculative_config.model") else "either"
        else:
            new = old[:1] + "\x00" + old[1:]
            expect = "invalid" if dotted in _PATH_FIELDS else "either"
        _put(doc, parts, new)
        return kind, doc, expect, f"{dotted} = {new[:20]!r}..."
    if not nums:
        return "none", doc, "either", ""
    parts, old = rng.choice(nums)
    dotted = ".".join(map(str, parts))
    is_int_field = _only(parts, {int})
    takes_containers = bool(_kinds(parts) & {list, dict, tuple})
    expect = "either"
    if kind == "bool":
        new, expect = rng.choice([True, False]), "invalid"
    elif kind == "fraction":
        new = (old if isinstance(old, int) else int(old)) + 0.5
        expect = "invalid" if is_int_field else "either"
    elif kind == "non_finite":
        new, expect = rng.choice([math.inf, -math.inf, math.nan]), "invalid"
    elif kind == "string":
        new, expect = rng.choice(["abc", "12abc", "1,000", "ten"]), "invalid"
    elif kind == "container":
        new = rng.choice([[1, 2], {"a": 1}, []])
        expect = "either" if takes_containers else "invalid"
    elif kind == "huge":
        new = rng.choice([10**6, 10**9, 10**12])
    elif kind == "beyond_2_53":
        new, expect = rng.choice([2**63, -(2**63), 10**30, 2**53 + 1]), "invalid"
    elif kind == "negative":
        new = -abs(old) if old else -1
    elif kind == "zero":
        new = 0
    elif kind == "scale":
        f = rng.choice([0.1, 2, 10, 1000])
        new = type(old)(old * f) if isinstance(old, int) and f >= 1 else old * f
    elif kind == "extreme_float":
        new = rng.choice([1e200, 1e-300, 1e308, -1e200, 1e16])
        expect = "invalid" if abs(new) > 1e15 else "either"
    elif kind == "null":
        new = None
    else:  # int_for_float: a float field given as an integer must be accepted
        if isinstance(old, float) and old == int(old) and _only(parts, {float}):
            new, expect = int(old), "valid"
        else:
            new = old
            expect = "valid"
    _put(doc, parts, new)
    return kind, doc, expect, f"{dotted} = {new!r}"[:120]


def _key_case(rng: random.Random, doc: dict) -> tuple[str, dict, str, str]:
    doc = copy.deepcopy(doc)
    maps = _mappings(doc)
    kind = rng.choice(["unknown_key", "typo_key", "delete_key", "section_to_value", "reorder"])
    parts = rng.choice(maps)
    target = doc
    for p in parts:
        target = target[p]
    if kind == "unknown_key":
        target[rng.choice(["bogus", "tensor_parallel", "numgpus", "x1"])] = rng.choice([1, "a", True])
        return kind, doc, "invalid", ".".join(map(str, parts))
    keys = [k for k in target if isinstance(k, str)]
    if not keys:
        return "none", doc, "either", ""
    key = rng.choice(keys)
    if kind == "typo_key":
        i = rng.randrange(len(key))
        typo = key[:i] + key[i + 1:] if len(key) > 1 else key + "x"
        if typo in target or not typo or (not parts and typo.startswith("_")):
            return "none", doc, "either", ""
        target[typo] = target.pop(key)
        return kind, doc, "invalid", f"{'.'.join(map(str, parts + [key]))} -> {typo}"
    if kind == "delete_key":
        del target[key]
        return kind, doc, "either", ".".join(map(str, parts + [key]))
    if kind == "section_to_value":
        subs = [k for k in keys if isinstance(target[k], dict) and target[k]]
        if not subs:
            return "none", doc, "either", ""
        k = rng.choice(subs)
        target[k] = rng.choice([3, "x", [1]])
        return kind, doc, "invalid", ".".join(map(str, parts + [k]))
    items = list(target.items())
    rng.shuffle(items)
    target.clear()
    target.update(items)
    return kind, doc, "valid", ".".join(map(str, parts))


def _rule_case(rng: random.Random, doc: dict) -> tuple[str, dict, str, str] | None:
    """A broken cross-field rule that applies to ``doc`` (None when none applies)."""
    doc = copy.deepcopy(doc)
    rules = []
    rl, spec = doc.get("rl"), _get(doc, "rollout.engine.speculative_config")
    if rl is not None:
        rules += ["warmup", "training_gpus", "global_batch", "rl_prompt"]
    if spec is not None and spec.get("method") not in ("mtp", "ngram"):
        rules += ["empty_drafter"]
    if spec is not None:
        rules += ["lookup"]
    if doc.get("workload") is not None:
        rules += ["context", "rollout_gpus", "prompt_model_len"]
    if not rules:
        return None
    rule = rng.choice(rules)
    cluster = doc["cluster"]["num_gpus"]
    if rule == "warmup":
        rl["num_steps"] = 3
        rl["warmup_steps"] = rng.choice([3, 5])
    elif rule == "training_gpus":
        rl.setdefault("training", {})["num_gpus"] = cluster * rng.choice([2, 10])
    elif rule == "global_batch":
        rl.setdefault("training", {})["train_global_batch_size"] = 1000
    elif rule in ("rl_prompt", "prompt_model_len"):
        doc["workload"]["prompt_length"] = {"kind": "fixed", "tokens": 2000}
        doc["rollout"].setdefault("engine", {})["max_model_len"] = 1000
    elif rule == "empty_drafter":
        spec["model"] = rng.choice(["", "   "])
    elif rule == "lookup":
        spec["prompt_lookup_min"], spec["prompt_lookup_max"] = 6, 3
    elif rule == "context":
        doc["workload"]["max_new_tokens"] = rng.choice([10**6, 10**7])
    elif rule == "rollout_gpus":
        doc["rollout"]["num_gpus"] = cluster * 2
    return rule, doc, "invalid", rule


# ---------------------------------------------------------------- whole-file mutations

def _file_case(rng: random.Random, doc: dict) -> tuple[str, bytes, str]:
    text = _dump(doc)
    kind = rng.choice(["deep", "laughs", "composite_key", "duplicate_key", "nul", "not_utf8", "truncate", "empty",
                       "top_list", "flip", "merge", "comments", "tabs", "big"])
    if kind == "deep":
        n = rng.choice([100, 1000, 5000])
        return kind, text + b"extra: " + b"[" * n + b"]" * n + b"\n", "invalid"
    if kind == "laughs":
        lol = 'lol: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
        prev = "a"
        for c in "bcdefghi":
            lol += f"{c}{c}: &{c} [" + ",".join([f"*{prev}"] * 9) + "]\n"
            prev = c
        return kind, text + lol.encode(), "invalid"
    if kind == "composite_key":
        return kind, text + rng.choice([b"? [a, b]\n: 1\n", b"? {a: 1}\n: 2\n"]), "invalid"
    if kind == "duplicate_key":
        first = text.split(b"\n", 1)[0]
        return kind, text + first + b"\n", "invalid"
    if kind == "nul":
        i = rng.randrange(len(text))
        return kind, text[:i] + b"\x00" + text[i:], "invalid"
    if kind == "not_utf8":
        i = rng.randrange(len(text))
        return kind, text[:i] + b"\xff\xfe" + text[i:], "invalid"
    if kind == "truncate":
        return kind, text[: rng.randrange(len(text))], "either"
    if kind == "empty":
        return kind, b"", "invalid"
    if kind == "top_list":
        return kind, rng.choice([b"- 1\n- 2\n", b"42\n", b"just text\n"]), "invalid"
    if kind == "flip":
        b = bytearray(text)
        for _ in range(rng.randint(1, 4)):
            b[rng.randrange(len(b))] = rng.randrange(32, 127)
        return kind, bytes(b), "either"
    if kind == "merge":
        eng = copy.deepcopy(doc.get("rollout", {}).get("engine"))
        if not isinstance(eng, dict) or not eng:
            return "comments", b"# a comment\n" + text, "valid"
        d2 = copy.deepcopy(doc)
        d2["rollout"]["engine"] = "__MERGE__"
        body = _dump(d2).replace(b"  engine: __MERGE__", b"  engine:\n    <<: *engine")
        anchor = b"_engine: &engine\n" + b"".join(b"  " + ln + b"\n" for ln in _dump(eng).splitlines())
        return kind, anchor + body, "valid"
    if kind == "comments":
        return kind, b"# fuzz\n#  another comment line\n" + text + b"# the end\n", "valid"
    if kind == "tabs":
        return kind, text.replace(b"  ", b"\t", 1), "either"
    return kind, text + b"# " + b"x" * (9 * 1024 * 1024) + b"\n", "invalid"  # big: over the 8 MiB limit


# ---------------------------------------------------------------- command lines

_BAD_FLAGS = [
    (["--seeds", "0"], "invalid"), (["--seeds", "-3"], "invalid"), (["--seeds", "100000"], "invalid"),
    (["--seed", "-1"], "invalid"), (["--seed", "abc"], "invalid"), (["--seed", str(2**63)], "invalid"),
    (["--baseline-mode", "bogus"], "invalid"), (["--bogus-flag"], "invalid"), (["--work-limit", "-1"], "invalid"),
    (["--work-limit", "nan"], "invalid"), (["--set", "novalue"], "invalid"), (["--set", "=3"], "invalid"),
    (["--set", "a..b=1"], "invalid"), (["--set", "rollout.engine=3"], "invalid"),
    (["--set", "rollout.engine.max_num_seqs.x=1"], "invalid"), (["--set", "bogus.field=1"], "invalid"),
    (["--set", "seed=true"], "invalid"), (["--set", "cluster.num_gpus=1e13"], "invalid"),
    (["--set", "workload.num_prompts_per_step=10000000"], "invalid"),
    (["--set", "rl.num_steps=1000000"], "either"), (["--set", "cluster.hardware=" + "h" * 300], "invalid"),
    (["--set", "model.name=" + "m/" * 2100], "invalid"), (["--set", "model.name=a\x00b"], "invalid"),
    (["--out", "summary_is_a_file.txt"], "invalid"), (["--out", "o" * 300], "invalid"),
    (["--out", "/proc/rlsim-cannot-write"], "invalid"),
]
_GOOD_FLAGS = [(["--json"], "valid"), (["--no-baseline"], "valid"), (["--out", "outdir"], "valid"),
               (["--seeds", "2"], "valid"), (["--seed", "7"], "valid")]
_OTHER_COMMANDS = [
    (["profiles", "show", "p" * 300], "invalid"), (["profiles", "show", "h100"], "invalid"),
    (["profiles", "show", "a\x00b"], "invalid"), (["profiles", "show", "x/" * 2100], "invalid"),
    (["profiles", "show", "h100_sxm"], "valid"), (["models", "show", "Qwen9-8B"], "invalid"),
    (["models", "show", "n" * 300 + ".json"], "invalid"), (["run", "missing.yaml"], "invalid"),
    (["run", "."], "invalid"), (["run", "s" * 300 + ".yaml"], "invalid"),
    (["acceptance", "from-vllm", "v" * 300], "invalid"), (["acceptance", "from-vllm", "a\x00b"], "invalid"),
    (["acceptance", "from-vllm", "missing.log"], "invalid"),
    (["calibrate", "check", "--profile", "h100_sxm", "--traces", "t" * 300], "invalid"),
    (["calibrate", "e2e-check", "--measurements", "m/" * 2100], "invalid"),
    (["bench", "--model", "Qwen3-8B", "--hardware", "h100_sxm", "--num-prompts", "4", "--random-output-len", "16"], "valid"),
    (["bench", "--model", "Qwen3-8B", "--hardware", "h100_sxm", "--num-prompts", "4", "--save-result", "r" * 300],
     "invalid"),
    (["bench", "--model", "Qwen3-8B", "--hardware", "h100_sxm", "--num-prompts", "0"], "invalid"),
    (["bench", "--model", "Qwen3-8B", "--hardware", "h100_sxm", "--num-prompts", "1000000000000"], "invalid"),
    (["bench", "--model", "Qwen3-8B", "--hardware", "h100_sxm", "--num-prompts", "4", "--random-input-len",
      "100000000000"], "invalid"),
    (["bench", "--model", "Qwen3-8B", "--hardware", "h100_sxm", "--num-prompts", "4", "--request-rate", "-1"], "invalid"),
    (["bench", "--model", "Qwen9-8B", "--hardware", "h100_sxm"], "invalid"),
    (["bench", "--model", "Qwen3-8B", "--hardware", "h100_sxm", "--num-prompts", "4", "--random-output-len", "16",
      "--request-rate", "nan"], "invalid"),
]


def _sweep_args(rng: random.Random, name: str, doc: dict) -> tuple[list[str], str]:
    choice = rng.choice(["huge_range", "bad_path", "zip_mismatch", "ok", "empty_range", "bad_value"])
    out = ["--out", "sweep.parquet", "--workers", "1", "--no-baseline"]
    if choice == "huge_range":
        return ["--grid", rng.choice(["seed", "rollout.engine.max_num_seqs"]) + "=0..1000000000000", *out], "invalid"
    if choice == "bad_path":
        return ["--grid", "rollout.engine.tensor_paralel_size=1,2", *out], "invalid"
    if choice == "zip_mismatch":
        return ["--zip", "seed=0,1", "--zip", "rollout.engine.max_num_seqs=64", *out], "invalid"
    if choice == "empty_range":
        return ["--grid", "rollout.engine.max_num_seqs=5..1", *out], "invalid"
    if choice == "bad_value":
        return ["--grid", "rollout.engine.max_num_seqs=true,.inf", *out], "either"
    if rng.random() < 0.2:
        return ["--grid", "seed=0,1", *out], "invalid"  # seeds are swept with --seeds
    return ["--grid", "rollout.engine.max_num_seqs=64,128", *out], "valid"


def make_case(rng: random.Random, docs: dict[str, dict], work_limit_flag: bool = True) -> Case:
    """One random case over the shipped scenarios ``docs`` (see the module docstring);
    ``work_limit_flag=False`` leaves ``--work-limit`` out (to fuzz a build without it)."""
    name = rng.choice(sorted(docs))
    doc = docs[name]
    roll = rng.random()
    limit = ["--work-limit", WORK_LIMIT] if work_limit_flag else []
    if roll < 0.30:
        mut, new, expect, detail = _value_case(rng, doc)
        return Case(f"value:{mut}", name, ["run", "s.yaml", "--json", *limit], {"s.yaml": _dump(new)}, expect,
                    detail=detail)
    if roll < 0.45:
        mut, new, expect, detail = _key_case(rng, doc)
        return Case(f"key:{mut}", name, ["run", "s.yaml", "--json", *limit], {"s.yaml": _dump(new)}, expect,
                    detail=detail)
    if roll < 0.58:
        made = _rule_case(rng, doc)
        if made is not None:
            mut, new, expect, detail = made
            return Case(f"rule:{mut}", name, ["run", "s.yaml", "--json", *limit], {"s.yaml": _dump(new)}, expect,
                        detail=detail)
    if roll < 0.72:
        mut, text, expect = _file_case(rng, doc)
        return Case(f"file:{mut}", name, ["run", "s.yaml", "--json", *limit], {"s.yaml": text}, expect)
    if roll < 0.86:
        flags, expect = rng.choice(_BAD_FLAGS if rng.random() < 0.7 else _GOOD_FLAGS)
        files = {"s.yaml": _dump(doc), "summary_is_a_file.txt": b"x\n"}
        if flags[0] == "--set" and _get(doc, flags[1].split("=", 1)[0].rsplit(".", 1)[0]) is None \
                and flags[1].split("=")[0] in ("rl.num_steps", "workload.num_prompts_per_step"):
            expect = "either"  # the section is absent from this scenario
        extra = [] if "--work-limit" in flags else limit
        return Case(f"flag:{flags[0]}", name, ["run", "s.yaml", *flags, *extra], files, expect,
                    detail=" ".join(flags)[:80])
    if roll < 0.93:
        args, expect = _sweep_args(rng, name, doc)
        return Case(f"sweep:{args[1][:30]}", name, ["sweep", "s.yaml", *args, *limit], {"s.yaml": _dump(doc)}, expect)
    if roll < 0.96 and _get(doc, "rollout.engine.speculative_config.method") == "eagle3":
        d2 = copy.deepcopy(doc)
        d2["rollout"]["engine"]["speculative_config"]["model"] = "EAGLE3-Llama-3.1-8B"
        return Case("rule:drafter_target", name, ["run", "s.yaml", "--json", *limit], {"s.yaml": _dump(d2)},
                    "warned", warning="trained for target_model")
    args, expect = rng.choice(_OTHER_COMMANDS)
    return Case(f"cmd:{args[0]} {args[1]}", name, list(args), {}, expect)


def summary_numbers_finite(text: str) -> bool:
    """Whether a JSON document has no NaN / Infinity (strict parse)."""
    def refuse(c):
        raise ValueError(c)

    try:
        json.loads(text, parse_constant=refuse)
    except ValueError:
        return False
    return True
