"""README "Deploying" against what can be checked without an AWS account: every parameter of
template.yaml is explained there, samconfig.toml overrides only parameters that exist, the outputs
and make targets it names exist."""

from __future__ import annotations

import re
import tomllib

from infra.local.template import REPO_ROOT, load_template

TEMPLATE = load_template()


def deploying_section() -> str:
    text = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    return text.split("\n## Deploying\n", 1)[1].split("\n## ", 1)[0]


def test_every_template_parameter_is_explained_in_deploying() -> None:
    named = set(re.findall(r"`([A-Za-z0-9]+)`", deploying_section()))
    assert set(TEMPLATE["Parameters"]) - named == set()


def test_the_outputs_deploying_names_exist() -> None:
    for output in ("ReplicateSecret", "TrainingWebhookUrl", "PredictionWebhookUrl"):
        assert f"`{output}`" in deploying_section()
        assert output in TEMPLATE["Outputs"]


def test_samconfig_overrides_only_parameters_the_template_has() -> None:
    config = tomllib.loads((REPO_ROOT / "samconfig.toml").read_text(encoding="utf-8"))
    for environment in ("dev", "prod"):
        overrides = config[environment]["deploy"]["parameters"]["parameter_overrides"]
        names = {override.split("=", 1)[0] for override in overrides}
        assert names <= set(TEMPLATE["Parameters"]), environment
        assert "REPLACE_ME" not in " ".join(o for o in overrides if o.startswith("Stage="))


def test_the_make_targets_deploying_names_exist() -> None:
    makefile = (REPO_ROOT / "Makefile").read_text(encoding="utf-8")
    for target in set(re.findall(r"`make ([a-z-]+)`", deploying_section())):
        assert re.search(rf"^{target}:", makefile, re.M), target
