"""The CPU divergence lab's lm-eval tasks (``tgpo_lab_*``), shipped as ``tgpo.tasks.lab``."""
