"""Files shipped with the package: the authors' evaluation system prompt and the paper's reported numbers.

``paper_reference.csv`` is a verbatim copy of ../shared/paper_reference.csv (numbers *reported* by the
paper and related work, with sources); never edit a number by hand.
"""

from pathlib import Path

RESOURCES = Path(__file__).resolve().parent
PAPER_REFERENCE_CSV = RESOURCES / "paper_reference.csv"
SYSTEM_PROMPT_FILE = RESOURCES / "system_prompt.txt"
#: The authors' "Thought/Solution" system prompt (SPEC §4), used for training and evaluation prompts.
SYSTEM_PROMPT = SYSTEM_PROMPT_FILE.read_text(encoding="utf-8")
