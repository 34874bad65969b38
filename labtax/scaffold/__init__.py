"""Scaffolding for taxonomy repositories: `labtax init` (pre-commit config, workflow callers,
`.labtax.yaml`) and `labtax install-hooks` (plain git hooks). The files written are data files in
`templates/` and `hooks/`, shipped inside the wheel so both commands work offline."""
