"""Synthetic data generation: the LAB pipelines for changed leaves, cached and resumable.

Entry points (imported from their modules, so that `import labtax.sdg` stays free of torch):
  running.diff_generate(taxonomy, output, ...)   plan and run `labtax diff-generate`; exit_code(outcome)
  generate.generate_leaves(leaves, teacher, ...) `labtax generate`: the named leaves as a forced plan
                                                 through the same engine (planning.plan_forced)
  output_dir.collect_garbage(output)             `labtax gc`
The sets are mixed by `labtax.mix` (its own stage: sdg imports it, never the reverse) and written,
with the manifest, through `labtax.data`; teachers come from `labtax.teachers`.
"""
