"""Leaves for the generation tests: real qna.yaml text parsed by labtax.taxonomy."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import yaml

from labtax.taxonomy.leaves import parse_leaf
from labtax.taxonomy.model import Leaf

FREEFORM = {
    "version": 3,
    "created_by": "tester",
    "task_description": "Write a short poem about a natural phenomenon.",
    "seed_examples": [
        {"question": f"Write a four line poem about the {w} at dawn.", "answer": f"The {w} wakes slowly,\nlight on {w}."}
        for w in ("river", "mountain", "forest", "desert", "ocean")
    ],
}

GROUNDED = {
    "version": 3,
    "created_by": "tester",
    "task_description": "Summarise an email in one sentence.",
    "seed_examples": [
        {
            "context": f"Hi team, the {w} meeting moves to Thursday at ten because the room is booked. Bring the {w} report.",
            "question": "Summarise this email in one sentence.",
            "answer": f"The {w} meeting moves to Thursday at ten; bring the report.",
        }
        for w in ("budget", "design", "hiring", "security", "roadmap")
    ],
}


def knowledge_data(repo: str, commit: str, patterns: list[str]) -> dict[str, Any]:
    return {
        "version": 3,
        "created_by": "tester",
        "domain": "astronomy",
        "document_outline": "Facts about the planets of the solar system",
        "seed_examples": [
            {
                "context": f"{p} is a planet of the solar system with its own moons and orbit.",
                "questions_and_answers": [
                    {"question": f"Is {p} a planet of the solar system?", "answer": f"Yes, {p} is a planet."},
                    {"question": f"Does {p} have its own orbit?", "answer": f"Yes, {p} orbits the Sun."},
                    {"question": f"What does {p} have besides an orbit?", "answer": f"{p} has its own moons."},
                ],
            }
            for p in ("Mars", "Jupiter", "Saturn", "Neptune", "Uranus")
        ],
        "document": {"repo": repo, "commit": commit, "patterns": patterns},
    }


def make_leaf(path: str, data: dict[str, Any]) -> Leaf:
    return parse_leaf(path, yaml.safe_dump(data, sort_keys=False).encode("utf-8"))


def document_leaf(root: Path, name: str, text: str) -> Leaf:
    """A knowledge leaf `knowledge/<name>` whose one document, `<name>.md`, is a folder under `root`'s
    .documents/ (a local document folder, no git)."""
    docs = root / ".documents" / name
    docs.mkdir(parents=True)
    (docs / f"{name}.md").write_text(text, encoding="utf-8")
    return make_leaf(f"knowledge/{name}/qna.yaml", knowledge_data(f".documents/{name}", "", ["*.md"]))


def freeform_leaf() -> Leaf:
    return make_leaf("compositional_skills/writing/poems/qna.yaml", FREEFORM)


def grounded_leaf() -> Leaf:
    return make_leaf("compositional_skills/email/summary/qna.yaml", GROUNDED)


PLANETS_MD = "\n\n".join(
    f"## {p}\n\n{p} is the {i + 1}th planet studied by the survey team. Its atmosphere holds "
    f"{g} and its surface temperature averages {t} degrees. Astronomers first mapped {p} in {y}."
    for i, (p, g, t, y) in enumerate(
        [("Mercury", "sodium", 167, 1974), ("Venus", "carbon dioxide", 464, 1990), ("Mars", "argon", -65, 1965),
         ("Jupiter", "hydrogen", -110, 1979), ("Saturn", "helium", -140, 1980)]
    )
)


def write_taxonomy(root: Path, leaves: dict[str, dict[str, Any]]) -> None:
    for path, data in leaves.items():
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
        (target.parent / "attribution.txt").write_text("Title: test\nLicense: CC-BY-4.0\n", encoding="utf-8")


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def generate_with_server(base_url: str, leaf: Leaf, settings: Any, root: Path, concurrency: int = 8) -> Any:
    """One leaf through its pipeline with the local test server as an OpenAI teacher (closed after)."""
    from labtax.sdg.pipelines import generate_leaf
    from labtax.teachers import make_teacher

    teacher = make_teacher("openai", endpoints=[base_url], model="test-model", concurrency=concurrency)

    async def go() -> Any:
        try:
            return await generate_leaf(leaf, teacher, settings, taxonomy_root=root)
        finally:
            await teacher.aclose()

    return run(go())
