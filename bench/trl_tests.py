"""TRL's own GRPO tests against ``TGPOTrainer`` as a drop-in: ``python -m bench.trl_tests``.

The README promises that switching from TRL is one class name (docs/method.md §7). This bench checks it with TRL's
own test file, run twice offline on the CPU: once as TRL ships it (``GRPOTrainer``), once with ``trl.GRPOTrainer``
replaced by :class:`tgpo.TGPOTrainer` before the tests import it (the tests keep building TRL ``GRPOConfig`` objects,
as a switching user would). Every test that passes on TRL and fails on the suite must be a documented refusal: a
``ValueError`` whose one line names the ``TGPOConfig`` field and what to use instead.

TRL's tests are not part of this repository and nothing is fetched: pass a folder holding TRL's
``test_grpo_trainer.py``, ``testing_utils.py``, ``testing_constants.py``, ``conftest.py`` and ``__init__.py``
(e.g. ``git -C TRL_CLONE archive HEAD tests | tar -x -C /tmp/trl``, or a source checkout). The bench copies them into
a scratch folder (``--work``, outside the repository) beside what it builds there itself:

* a Hugging Face cache (``HF_HOME``) with tiny stand-ins under the Hub ids the tests load
  (:data:`STAND_INS`: random tiny models over a byte-level tokenizer without merges, TRL's chat templates);
* a local ``trl-internal-testing/zen`` dataset (its two prompt-only configurations; prompts from Python's ``this``);
* a ``conftest.py`` that points ``load_dataset`` at it, swaps the trainer class (``--trainer tgpo``), defines the
  availability checks the tests import and the installed TRL lacks, and skips the tests that need a model without a
  stand-in (vision models, remote code). TRL's own markers skip those needing an absent package (peft, vllm,
  liger-kernel) or an accelerator.

Then ``run`` runs one trainer (one process, JUnit XML into the scratch folder) and ``report`` compares the two runs
and writes ``results/bench/trl_conformance.md``::

    python -m bench.trl_tests setup --tests /tmp/trl/tests --work /tmp/trl-conformance
    python -m bench.trl_tests run --work /tmp/trl-conformance --trainer trl
    python -m bench.trl_tests run --work /tmp/trl-conformance --trainer tgpo
    python -m bench.trl_tests report --work /tmp/trl-conformance --source "huggingface/trl@<commit>"
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

from tgpo.cli import OneLineParser

ROOT = Path(__file__).resolve().parents[1]
PROG = "python -m bench.trl_tests"
OUT = ROOT / "results" / "bench" / "trl_conformance.md"
TRL_FILES = ("__init__.py", "conftest.py", "testing_constants.py", "testing_utils.py", "test_grpo_trainer.py")
TRAINERS = ("trl", "tgpo")

#: Hub id -> (model_type, head, config overrides). Heads: ``causal`` (AutoModelForCausalLM) or ``score``
#: (AutoModelForSequenceClassification, one label: a reward model). Sizes are as small as the architectures allow.
STAND_INS: dict[str, tuple[str, str, dict]] = {
    "trl-internal-testing/tiny-Qwen2ForCausalLM-2.5": ("qwen2", "causal", {"tie_word_embeddings": True}),
    "trl-internal-testing/tiny-Qwen2ForSequenceClassification-2.5": ("qwen2", "score", {}),
    "trl-internal-testing/tiny-Qwen3ForCausalLM": ("qwen3", "causal", {"tie_word_embeddings": False}),
    "trl-internal-testing/tiny-Qwen3ForSequenceClassification": ("qwen3", "score", {}),
    "trl-internal-testing/tiny-Qwen3MoeForCausalLM": (
        "qwen3_moe", "causal", {"num_experts": 4, "num_experts_per_tok": 2, "moe_intermediate_size": 16}),
    "trl-internal-testing/tiny-LlamaForCausalLM-3.2": ("llama", "causal", {}),
    "trl-internal-testing/tiny-LlamaForSequenceClassification-3.2": ("llama", "score", {}),
    "trl-internal-testing/tiny-MistralForCausalLM-0.2": ("mistral", "causal", {}),
    "trl-internal-testing/tiny-Gemma2ForCausalLM": ("gemma2", "causal", {}),
    "trl-internal-testing/tiny-Cohere2ForCausalLM": ("cohere2", "causal", {}),
}
#: Common sizes of every stand-in (2 layers: some architectures alternate sliding and full attention).
SIZES = dict(hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1,
             head_dim=8, max_position_embeddings=512)
#: The stand-ins' special tokens, after the 256 byte tokens (Qwen2.5's names; eos ``<|im_end|>``, pad
#: ``<|endoftext|>`` as its instruct models). The vocabulary stays small (259 ids) to keep the CPU run short, so the two
#: tests that assume Qwen2.5's ids (a mocked ``generate`` emitting id 151645) or its 151k-id vocabulary (a random
#: model that almost never samples the end token) fail on TRL itself and are not compared.
SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
#: Each stand-in's chat template: the one TRL ships for its family (read from the installed ``trl`` package).
CHAT_TEMPLATES = {"qwen3": "qwen3.jinja", "qwen3_moe": "qwen3.jinja"}
DEFAULT_CHAT_TEMPLATE = "qwen2_5.jinja"
#: The local ``zen`` dataset is, like TRL's, the opening words of each line of the Zen of Python (Python's own
#: ``this`` module): words kept per line, 17 lines for ``train`` and 2 for ``test``. Some tests read the first rows.
ZEN_WORDS = (4, 2, 3, 1, 4, 3, 1, 4, 3, 3, 2, 6, 3, 5, 3, 4, 5, 4, 3)
ZEN_TRAIN_ROWS = 17


# --------------------------------------------------------------------------------------------------------
# setup: stand-in models in a Hugging Face cache, the local dataset, the conftest
# --------------------------------------------------------------------------------------------------------

def zen_prompts() -> list[str]:
    """The opening words of each line of the Zen of Python (decoded from the standard library's ``this``)."""
    import codecs
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()):  # `import this` prints the poem
        import this
    lines = [line for line in codecs.decode(this.s, "rot13").splitlines()[2:] if line]
    return [" ".join(line.split()[:n]) for line, n in zip(lines, ZEN_WORDS, strict=True)]


def qwen_like_tokenizer(chat_template: str):
    """A byte-level tokenizer without merges (one token per UTF-8 byte, GPT-2's byte alphabet as Qwen2.5's) and
    :data:`SPECIAL_TOKENS`. ``AutoTokenizer`` rebuilds a Qwen2 tokenizer
    from the saved vocabulary with its own byte-level pre-tokenizer: without merges it encodes exactly as this one,
    so TRL (``AutoProcessor``) and the suite (:func:`tgpo.teacher.load_tokenizer`) read the same ids."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {c: i for i, c in enumerate(sorted(pre_tokenizers.ByteLevel.alphabet()))}
    vocab.update({t: len(vocab) + i for i, t in enumerate(SPECIAL_TOKENS)})
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIAL_TOKENS])
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                  additional_special_tokens=["<|im_start|>"], clean_up_tokenization_spaces=False,
                                  chat_template=chat_template)


def _stand_in(model_type: str, head: str, overrides: dict, tokenizer):
    import torch
    from transformers import (
        AutoConfig,
        AutoModelForCausalLM,
        AutoModelForSequenceClassification,
        GenerationConfig,
    )

    torch.manual_seed(0)
    ids = dict(vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
               bos_token_id=None)
    config = AutoConfig.for_model(model_type, **{**SIZES, **ids, **overrides})
    if head == "score":
        config.num_labels = 1
        return AutoModelForSequenceClassification.from_config(config)
    model = AutoModelForCausalLM.from_config(config)
    model.generation_config = GenerationConfig(eos_token_id=tokenizer.eos_token_id,
                                               pad_token_id=tokenizer.pad_token_id)
    return model


def _cache_folder(hub_cache: Path, repo_id: str, repo_type: str = "models") -> Path:
    """The snapshot folder of ``repo_id`` in the Hub cache layout (``refs/main`` -> ``snapshots/<revision>``)."""
    revision = hashlib.sha1(repo_id.encode()).hexdigest()
    repo = hub_cache / f"{repo_type}--{repo_id.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(revision)
    return repo / "snapshots" / revision


def build_cache(hf_home: Path) -> dict[str, str]:
    """Save every stand-in of :data:`STAND_INS` into ``hf_home/hub``; return ``{id: 'ok' | why it was not built}``."""
    from importlib.resources import files

    built = {}
    for repo_id, (model_type, head, overrides) in STAND_INS.items():
        template = CHAT_TEMPLATES.get(model_type, DEFAULT_CHAT_TEMPLATE)
        tokenizer = qwen_like_tokenizer((files("trl") / "chat_templates" / template).read_text())
        try:
            model = _stand_in(model_type, head, overrides, tokenizer)
        except Exception as exc:  # an architecture this transformers cannot build: its tests are skipped
            built[repo_id] = f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
            continue
        folder = _cache_folder(hf_home / "hub", repo_id)
        model.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        built[repo_id] = "ok"
    return built


def build_zen(folder: Path) -> None:
    """``folder``: a local dataset with the configurations ``standard_prompt_only`` and ``conversational_prompt_only``
    (train/test splits), declared in its README as a Hub dataset declares them."""
    from datasets import Dataset

    configs = {
        "standard_prompt_only": lambda p: {"prompt": p},
        "conversational_prompt_only": lambda p: {"prompt": [{"role": "user", "content": p}]},
    }
    zen = zen_prompts()
    header = ["---", "configs:"]
    for name, row in configs.items():
        header += [f"- config_name: {name}", "  data_files:"]
        for split, prompts in (("train", zen[:ZEN_TRAIN_ROWS]), ("test", zen[ZEN_TRAIN_ROWS:])):
            path = folder / name / f"{split}.parquet"
            path.parent.mkdir(parents=True, exist_ok=True)
            Dataset.from_list([row(p) for p in prompts]).to_parquet(str(path))
            header += [f"  - split: {split}", f"    path: {name}/{split}.parquet"]
    (folder / "README.md").write_text("\n".join([*header, "---", ""]))


CONFTEST = '''"""Written by bench/trl_tests.py: local data, the trainer swap, skips for what has no stand-in."""
import inspect
import json
import os
import re

import importlib.util

import datasets
import pytest
from trl import import_utils as trl_import_utils

WORK = os.path.dirname(os.path.abspath(__file__))
LOCAL_DATASETS = {"trl-internal-testing/zen": os.path.join(WORK, "data", "zen")}
BUILT = set(json.load(open(os.path.join(WORK, "stand_ins.json"))))
HUB_ID = re.compile(r"(?:trl-internal-testing|Qwen|HuggingFaceTB)/[A-Za-z0-9_.-]+")
_load_dataset = datasets.load_dataset


def load_dataset(path, *args, **kwargs):
    return _load_dataset(LOCAL_DATASETS.get(path, path), *args, **kwargs)


datasets.load_dataset = load_dataset  # before the test module's `from datasets import load_dataset`
# TRL's testing_utils may import availability checks that the installed TRL does not define (its tests may come from
# another commit than the installed release): the missing ones look for the package itself.
for name, package in (("is_joblib_available", "joblib"),):
    if not hasattr(trl_import_utils, name):
        setattr(trl_import_utils, name, lambda package=package: importlib.util.find_spec(package) is not None)

if os.environ["TRL_TESTS_TRAINER"] == "tgpo":
    import trl
    from tgpo import TGPOTrainer

    trl.GRPOTrainer = TGPOTrainer  # before the test module's `from trl import GRPOTrainer`


def pytest_collection_modifyitems(config, items):
    for item in items:
        source = inspect.getsource(item.function) if hasattr(item, "function") else ""
        text = source[source.find("def "):]  # the body: a parametrize list names every case's model, not this one's
        text += " " + " ".join(str(v) for v in getattr(getattr(item, "callspec", None), "params", {}).values())
        missing = sorted({m for m in HUB_ID.findall(text) if m not in BUILT and m not in LOCAL_DATASETS})
        if missing:
            item.add_marker(pytest.mark.skip(reason="no local stand-in for " + ", ".join(missing)))
'''


class Refused(ValueError):
    """Bad input to a sub-command, found before it writes anything; ``main`` prints it as one line, exit code 2."""


def setup(tests: Path, work: Path) -> dict[str, str]:
    if not tests.is_dir():
        raise Refused(f"--tests {tests}: not a folder")
    missing = [name for name in TRL_FILES if not (tests / name).is_file()]
    if missing:
        raise Refused(f"--tests {tests}: missing TRL's {', '.join(missing)}")
    if work.resolve().is_relative_to(ROOT):
        raise Refused(f"--work {work}: must be outside the repository (TRL's tests are not committed here)")
    if work.exists() and not work.is_dir():
        raise Refused(f"--work {work}: not a folder")
    (work / "tests").mkdir(parents=True, exist_ok=True)
    for name in TRL_FILES:
        shutil.copy(tests / name, work / "tests" / name)
    build_zen(work / "data" / "zen")
    built = build_cache(work / "hf_home")
    (work / "stand_ins.json").write_text(json.dumps([k for k, v in built.items() if v == "ok"]))
    (work / "conftest.py").write_text(CONFTEST)
    return built


# --------------------------------------------------------------------------------------------------------
# run and report
# --------------------------------------------------------------------------------------------------------

def run(work: Path, trainer: str, extra: list[str]) -> int:
    for name in ("conftest.py", "tests/test_grpo_trainer.py", "hf_home"):
        if not (work / name).exists():
            raise Refused(f"--work {work}: no {name} (run `{PROG} setup --tests DIR --work {work}` first)")
    env = {**os.environ, "HF_HOME": str(work / "hf_home"), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": "", "TRL_TESTS_TRAINER": trainer,
           "HF_DATASETS_CACHE": str(work / "datasets_cache"), "WANDB_MODE": "disabled"}
    cmd = [sys.executable, "-m", "pytest", "tests/test_grpo_trainer.py", "-p", "no:cacheprovider", "-q", "-rN",
           "-o", "addopts=", "--rootdir", str(work), f"--junitxml={work / f'junit-{trainer}.xml'}", *extra]
    print(" ".join(cmd), flush=True)
    return subprocess.call(cmd, cwd=work, env=env)


def outcomes(xml: Path) -> dict[str, tuple[str, str]]:
    """``{test id: (passed | failed | skipped, message)}`` from a JUnit XML file (an error counts as failed)."""
    result = {}
    for case in ET.parse(xml).getroot().iter("testcase"):
        name = f"{case.get('classname', '').split('.')[-1]}::{case.get('name')}"
        status, message = "passed", ""
        for child in case:
            if child.tag in ("failure", "error"):
                status, message = "failed", child.get("message") or ""
            elif child.tag == "skipped":
                status, message = "skipped", child.get("message") or ""
        result[name] = (status, message)
    return result


#: A documented refusal: ``TGPOConfig.<field>=<value> is not supported: <what to use instead>`` (docs/method.md §7).
REFUSAL = re.compile(r"ValueError: (TGPOConfig\.(\w+)=.* is not supported: .*)")


def classify(trl: dict, tgpo: dict) -> dict[str, list]:
    groups = {"refusal": [], "other": [], "trl_failed": [], "skipped": []}
    for name, (status, message) in sorted(trl.items()):
        if status == "skipped":
            groups["skipped"].append((name, message))
        elif status == "failed":
            groups["trl_failed"].append((name, message.splitlines()[0] if message else ""))
        elif tgpo.get(name, ("missing", ""))[0] != "passed":
            other_message = tgpo.get(name, ("missing", "not run"))[1]
            refusal = REFUSAL.search(other_message)
            if refusal and "\n" not in refusal.group(1):
                groups["refusal"].append((name, refusal.group(1)))
            else:
                groups["other"].append((name, other_message.splitlines()[0] if other_message else ""))
    return groups


def _wall_seconds(xml: Path) -> float:
    root = ET.parse(xml).getroot()
    suite = root if root.tag == "testsuite" else root.find("testsuite")
    return float(suite.get("time", "nan"))


def _git_sha() -> str:
    sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout
    dirty = subprocess.run(["git", "status", "--porcelain", "tgpo"], cwd=ROOT, capture_output=True, text=True).stdout
    return sha.strip() + ("-dirty" if dirty.strip() else "")


def report(work: Path, source: str, out: Path) -> int:
    for name in (*(f"junit-{t}.xml" for t in TRAINERS), "stand_ins.json"):
        if not (work / name).is_file():
            raise Refused(f"--work {work}: no {name} (run `setup`, then `run` with each --trainer, first)")
    if out.is_dir() or not out.parent.is_dir():
        raise Refused(f"--out {out}: not a file in an existing folder")
    parsed = {}
    for t in TRAINERS:
        try:
            parsed[t] = outcomes(work / f"junit-{t}.xml")
        except ET.ParseError as err:  # e.g. a run stopped while writing it
            raise Refused(f"--work {work}: junit-{t}.xml is not readable JUnit XML ({err})") from None
    trl, tgpo = parsed["trl"], parsed["tgpo"]
    import datasets
    import torch
    import transformers
    import trl as trl_package

    groups = classify(trl, tgpo)
    passed = {t: sum(s == "passed" for s, _ in r.values()) for t, r in (("trl", trl), ("tgpo", tgpo))}
    wall = {t: _wall_seconds(work / f"junit-{t}.xml") for t in TRAINERS}
    built = json.loads((work / "stand_ins.json").read_text())
    skip_reasons = Counter(m for _, m in groups["skipped"])
    lines = [
        "# TRL's own GRPO tests against `TGPOTrainer`",
        "",
        "Written by `python -m bench.trl_tests report` (bench/trl_tests.py says how the tests are run: offline, on the",
        "CPU, one process, tiny local stand-ins under the Hub ids the tests load). Do not edit by hand.",
        "",
        f"- TRL installed: {trl_package.__version__} (transformers {transformers.__version__}, torch "
        f"{torch.__version__}, datasets {datasets.__version__}); the suite at git {_git_sha()}.",
        f"- TRL's tests: {source}.",
        "- Commands: `python -m bench.trl_tests setup --tests DIR --work WORK`, then `run --work WORK --trainer trl`, "
        "`run --work WORK --trainer tgpo`, `report --work WORK --source ...`.",
        f"- Wall time: {wall['trl']:.0f} s on TRL, {wall['tgpo']:.0f} s on the suite ({os.cpu_count()} CPU cores, shared; one torch thread).",
        f"- Stand-ins built: {', '.join(f'`{b}`' for b in built)}.",
        "",
        "## Counts",
        "",
        f"- Tests collected: {len(trl)}; skipped: {len(groups['skipped'])}; failed on TRL itself: "
        f"{len(groups['trl_failed'])}.",
        f"- **Passed on TRL's `GRPOTrainer`: {passed['trl']}. Passed on `TGPOTrainer` (`trl.GRPOTrainer` replaced "
        f"before the tests import it; the tests keep passing TRL's `GRPOConfig`): {passed['tgpo']}.**",
        f"- Passed on TRL and failed on `TGPOTrainer`: {len(groups['refusal']) + len(groups['other'])} — documented "
        f"refusals (docs/method.md §7): {len(groups['refusal'])}; anything else: **{len(groups['other'])}**.",
        "",
        "## Documented refusals (passed on TRL; `TGPOTrainer` refuses with one line)",
        "",
        "| test | message |",
        "|---|---|",
        *(f"| `{n}` | {m.replace('|', '/')} |" for n, m in groups["refusal"]),
        "",
        "## Other failures (passed on TRL, failed on `TGPOTrainer`)",
        "",
        *([f"- `{n}`: {m}" for n, m in groups["other"]] or ["None."]),
        "",
        "## Not compared",
        "",
        "Failed on TRL itself here (tests written for other stand-ins or another TRL commit; not a measure of the "
        "suite):",
        "",
        *([f"- `{n}`: {m}" for n, m in groups["trl_failed"]] or ["None."]),
        "",
        "Skipped on both (count, reason):",
        "",
        *(f"- {count}: {reason}" for reason, count in skip_reasons.most_common()),
        "",
    ]
    out.write_text("\n".join(lines))
    print(f"wrote {out}: TRL passed {passed['trl']}, TGPO passed {passed['tgpo']}, refusals "
          f"{len(groups['refusal'])}, other {len(groups['other'])}")
    return 1 if groups["other"] else 0


def main(argv=None) -> int:
    parser = OneLineParser(prog=PROG, description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("setup", help="copy TRL's tests and build the stand-ins in --work")
    p.add_argument("--tests", type=Path, required=True, help="a folder with TRL's test_grpo_trainer.py and helpers")
    p.add_argument("--work", type=Path, required=True, help="scratch folder outside the repository")
    p = sub.add_parser("run", help="run TRL's GRPO tests against one trainer")
    p.add_argument("--work", type=Path, required=True)
    p.add_argument("--trainer", choices=TRAINERS, required=True)
    p.add_argument("pytest_args", nargs="*", help="more pytest arguments (after --), e.g. -k")
    p = sub.add_parser("report", help="compare the two runs; write results/bench/trl_conformance.md")
    p.add_argument("--work", type=Path, required=True)
    p.add_argument("--source", required=True, help="where TRL's tests came from (repository@commit, sdist)")
    p.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    try:
        if args.command == "setup":
            built = setup(args.tests, args.work)
            for repo_id, state in built.items():
                print(f"{repo_id}: {state}")
            return 0
        if args.command == "run":
            return run(args.work, args.trainer, args.pytest_args)
        return report(args.work, args.source, args.out)
    except Refused as err:
        parser.error(str(err))


if __name__ == "__main__":
    sys.exit(main())
