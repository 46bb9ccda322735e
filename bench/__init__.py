"""Measurements of the suite itself (speed, memory, the grader's throughput and agreement), run as modules
(``python -m bench.<name>``) like the reproduction scripts. Not part of the installed library; results go to
``results/bench/``."""
