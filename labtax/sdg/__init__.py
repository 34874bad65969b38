"""Synthetic data generation: the LAB pipelines for changed leaves, cached and resumable.

Entry points (imported from their modules, so that `import labtax.sdg` stays free of torch):
  running.diff_generate(taxonomy, output, ...)   plan and run `labtax diff-generate`; exit_code(outcome)
  generate.generate_leaves(leaves, teacher, ...) `labtax generate`: the pipelines for named leaves
  output_dir.collect_garbage(output)             `labtax gc`
  export.export_ilab(data_dir, output)           `labtax export --format ilab`
The sets and the manifest are written through `labtax.data`; teachers come from `labtax.teachers`.
"""
