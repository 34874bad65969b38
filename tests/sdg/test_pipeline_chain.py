"""Each pipeline's YAML declares the steps every row goes through (`chain:`); a chain that names a stage
the file lacks, twice, or one the pipeline's code cannot run as a step is one line naming the file and
the stage when it is loaded."""

from __future__ import annotations

from pathlib import Path

import pytest

from labtax.errors import ConfigError
from labtax.sdg.pipelines.knowledge import FILTERS
from labtax.sdg.pipelines.runner import check_chain, load_pipeline
from labtax.sdg.pipelines.skills import CHAIN_STEPS


def test_the_shipped_pipelines_declare_their_chains() -> None:
    for name in ("freeform_skills", "grounded_skills"):
        assert load_pipeline(name).chain == ("judge_question", "answer", "score")
    assert load_pipeline("knowledge").chain == FILTERS == ("faithful", "relevant", "standalone")


def test_a_bad_chain_is_one_line_naming_the_file_and_the_stage() -> None:
    stages = load_pipeline("freeform_skills").stages
    path = Path("mine.yaml")
    assert check_chain(path, ["score", "answer"], stages, CHAIN_STEPS) == ("score", "answer")
    with pytest.raises(ConfigError, match=r"^mine.yaml: chain: 'judge' is not a stage of this pipeline"):
        check_chain(path, ["judge", "answer"], stages)
    with pytest.raises(ConfigError, match=r"^mine.yaml: chain: 'answer' is listed twice$"):
        check_chain(path, ["answer", "answer"], stages)
    with pytest.raises(ConfigError, match=r"^mine.yaml: chain: 'questions' cannot be a chain step"):
        check_chain(path, ["questions"], stages, CHAIN_STEPS)
    with pytest.raises(ConfigError, match=r"^mine.yaml: chain: a list of the stages"):
        check_chain(path, None, stages)
