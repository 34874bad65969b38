"""Training in phases (LAB): knowledge, then skills with a knowledge replay, packed, resumable.

Entry points (imported from their modules: importing `labtax.train` loads no torch):
  phases.run_training(data_dir, model, output, phases, config, ...)   both phases, or one
  config.load_config(file, overrides, project)                        defaults < .labtax.yaml < YAML < flags
  launch.launch(train_args, placement)                                re-run under torchrun (FSDP2)
  versions.check_training_versions()                                  the torch/transformers floors
The sets are read through `labtax.data`.
"""
