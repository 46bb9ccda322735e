"""Files shipped with the package: the authors' evaluation system prompt, the paper's reported numbers and the
settings presets.

``paper_reference.csv`` holds numbers *reported* by the paper and related work, each with its source, copied
verbatim from the project's reference table; never edit a number by hand, never fill an empty cell.
"""

from pathlib import Path

RESOURCES = Path(__file__).resolve().parent
PAPER_REFERENCE_CSV = RESOURCES / "paper_reference.csv"
SYSTEM_PROMPT_FILE = RESOURCES / "system_prompt.txt"
#: Settings presets (normalisation and aggregation per method), read by :func:`tgpo.run_config.presets`.
PRESETS_FILE = RESOURCES / "presets.yaml"
#: The authors' "Thought/Solution" system prompt (docs/method.md §4), used for training and evaluation prompts.
SYSTEM_PROMPT = SYSTEM_PROMPT_FILE.read_text(encoding="utf-8")
