"""The training loop and what it is made of: the plan (plan.py), the programs (a task's
step composed with a layout, step.py), the loop itself (fit.py), the records it keeps
(records.py), the non-finite guard (guards.py) and XLA CPU settings (xla_cpu.py)."""
