"""``tgpo eval``: score any checkpoint on the paper's benchmarks with the paper's protocol (docs/method.md §4).

One module per concern: :mod:`~tgpo.eval.cli` (the command line), :mod:`~tgpo.eval.settings` (input checks),
:mod:`~tgpo.eval.backends` (the lm-eval models: hf, vllm, api), :mod:`~tgpo.eval.run` (the run: tasks, model,
lm-eval) and :mod:`~tgpo.eval.report` (summary CSV/Markdown, manifest). Importing this package is cheap: lm-eval
and torch load only when a run starts.
"""

from tgpo.eval.run import EvalInterrupted, EvalResult, evaluate, list_tasks, tasks_dir
from tgpo.eval.settings import EvalInputError, EvalSettings

__all__ = ["EvalInputError", "EvalInterrupted", "EvalResult", "EvalSettings", "evaluate", "list_tasks", "tasks_dir"]
