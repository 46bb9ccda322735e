"""Measurements of the suite itself (speed, memory, the grader's throughput and agreement), run as modules
(``python -m bench.<name>``) like the reproduction scripts. Not part of the installed library; results go to
``results/bench/``."""

import os


def option_or_variable(value: str | os.PathLike | None, option: str, variable: str) -> tuple[str, str | None]:
    """``(where it came from, the value)``: the option when given, else the environment variable (None when neither
    is set), so a refusal names the one the user actually set."""
    return (option, str(value)) if value else (variable, os.environ.get(variable))
