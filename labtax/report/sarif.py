"""SARIF 2.1.0 (for GitHub code scanning and other viewers). Stable: documented in docs/validate.md."""

from __future__ import annotations

import json

from labtax import __version__
from labtax.report.context import ReportContext
from labtax.taxonomy.catalog import RULES, default_level
from labtax.taxonomy.model import Finding

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
INFO_URI = "https://github.com/labtax/labtax"


def as_dict(findings: list[Finding], ctx: ReportContext) -> dict[str, object]:
    rule_ids = list(RULES)
    for f in findings:  # a rule id outside the catalog still gets a descriptor
        if f.rule not in RULES and f.rule not in rule_ids:
            rule_ids.append(f.rule)
    index = {rule: i for i, rule in enumerate(rule_ids)}
    rules = [
        {
            "id": rule,
            "name": "".join(part.capitalize() for part in rule.split("-")),
            "shortDescription": {"text": RULES.get(rule, ("error", rule))[1]},
            "defaultConfiguration": {"level": default_level(rule)},
        }
        for rule in rule_ids
    ]
    results = []
    for f in findings:
        location: dict[str, object] = {
            "physicalLocation": {
                "artifactLocation": {"uri": ctx.in_repo(f), "uriBaseId": "SRCROOT"},
                "region": {"startLine": f.line, "startColumn": f.col},
            }
        }
        if f.yaml_path:
            location["logicalLocations"] = [{"fullyQualifiedName": f.yaml_path, "kind": "member"}]
        result: dict[str, object] = {
            "ruleId": f.rule,
            "ruleIndex": index[f.rule],
            "level": f.severity,
            "message": {"text": f.message + (f". Hint: {f.hint}" if f.hint else "")},
            "locations": [location],
            "properties": {"yamlPath": f.yaml_path, "hint": f.hint},
        }
        results.append(result)
    base = (ctx.repo_root or ctx.root).resolve().as_uri().rstrip("/") + "/"
    run: dict[str, object] = {
        "tool": {"driver": {"name": "labtax", "version": __version__, "informationUri": INFO_URI, "rules": rules}},
        "originalUriBaseIds": {"SRCROOT": {"uri": base}},
        "columnKind": "unicodeCodePoints",
        "results": results,
    }
    return {"$schema": SARIF_SCHEMA, "version": "2.1.0", "runs": [run]}


def render(findings: list[Finding], ctx: ReportContext) -> str:
    return json.dumps(as_dict(findings, ctx), indent=2, ensure_ascii=False) + "\n"
