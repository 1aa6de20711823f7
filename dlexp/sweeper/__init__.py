"""dlexp's Hydra sweeper (`hydra/sweeper=dlexp`, the default for -m): grids and Optuna searches
whose jobs that differ only in vectorizable keys train as one compiled program.

- `grouping`: which jobs can share a program, and the pack files that name them;
- `members`: the packed job's side: train the group, write each job's dir as a run of its own;
- `memory`: how many copies fit the device, so a group splits into chunks that do;
- `search`: Optuna 5 through ask-and-tell, a batch of trials at a time;
- `plugin`: the sweep itself (the Hydra plugin class lives in hydra_plugins/dlexp_sweeper).
"""
