"""RL pipelines: sync (colocated, disaggregated) and async GRPO over an engine pool (DESIGN 8).

Modules: config (RLConfig), pool (engines as simpy processes), plan (trainer and sync costs),
pipeline (the simpy processes), run (spec vs baselines).  Import from the submodules.
"""
