"""tgpo's lm-eval tasks, shipped with the package as ``tgpo.tasks``.

The folder itself is the task folder: ``lm_eval --include_path tasks`` in a checkout, or
``importlib.resources.files("tgpo.tasks")`` in an installed package (what ``tgpo eval`` uses).
"""


class BenchmarkDataError(ValueError):
    """A benchmark's data cannot be read; the message is one line naming the file (and line) or Hub id."""
