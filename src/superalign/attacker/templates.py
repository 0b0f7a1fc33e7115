"""PyRIT jailbreak templates, read by path from the installed `pyrit` asset wheel (never imported).

Each template is a YAML file under `pyrit/datasets/jailbreak/templates/` (some in subfolders) whose
`value` is Jinja text with a `{{ prompt }}` placeholder. We keep only templates whose sole parameter
is `prompt` and whose text is short enough for the learner's context (a 135M model: long templates
cost generation time and push the request out of view).

PyRIT is MIT-licensed; nothing is vendored here, the files are read from the installed wheel.
"""

from __future__ import annotations

import functools
import importlib.util
from dataclasses import dataclass
from pathlib import Path

from superalign.errors import UserError

TEMPLATES_SUBDIR = Path("datasets") / "jailbreak" / "templates"


@dataclass(frozen=True)
class JailbreakTemplate:
    """One usable template. `name` is its path under the templates dir without `.yaml`
    (unique, e.g. "aim" or "pliny/openai/gpt_4o"); `text` is the raw Jinja source."""

    name: str
    text: str


def templates_dir() -> Path:
    """The PyRIT jailbreak templates directory, found without importing `pyrit`.

    Raises UserError when the pyrit asset wheel is not installed.
    """
    spec = importlib.util.find_spec("pyrit")
    locations = list(spec.submodule_search_locations or []) if spec else []
    if not locations or not (Path(locations[0]) / TEMPLATES_SUBDIR).is_dir():
        raise UserError("PyRIT jailbreak templates not found (the pyrit asset wheel is missing); run `make install`")
    return Path(locations[0]) / TEMPLATES_SUBDIR


def _parameters(source: str) -> set[str] | None:
    """The undeclared variables of a Jinja source, or None if it does not parse."""
    import jinja2
    from jinja2 import meta

    try:
        return set(meta.find_undeclared_variables(jinja2.Environment().parse(source)))
    except jinja2.TemplateSyntaxError:
        return None


@functools.lru_cache(maxsize=4)
def _all_prompt_templates(root: str) -> tuple[JailbreakTemplate, ...]:
    """Every template under `root` with exactly the `prompt` parameter, sorted by name (memoised)."""
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    base = Path(root)
    out = []
    for path in sorted(base.rglob("*.yaml")):
        try:
            doc = yaml.load(path.read_text(encoding="utf-8"), Loader=loader)
        except (yaml.YAMLError, UnicodeDecodeError):
            continue  # a broken asset file is skipped, not fatal
        if not isinstance(doc, dict) or not isinstance(doc.get("value"), str):
            continue
        declared = doc.get("parameters") or []
        if list(declared) != ["prompt"] or _parameters(doc["value"]) != {"prompt"}:
            continue
        name = path.relative_to(base).with_suffix("").as_posix()
        out.append(JailbreakTemplate(name=name, text=doc["value"]))
    return tuple(out)


def load_templates(max_chars: int = 1500) -> list[JailbreakTemplate]:
    """Usable PyRIT jailbreak templates (only parameter `prompt`, at most `max_chars` characters of
    template text), sorted by name. Raises UserError if the pyrit wheel is missing."""
    return [t for t in _all_prompt_templates(str(templates_dir())) if len(t.text) <= max_chars]


def render(template: JailbreakTemplate, prompt: str) -> str:
    """The template text with `prompt` inserted (sandboxed Jinja, undefined variables are errors)."""
    from jinja2 import StrictUndefined
    from jinja2.sandbox import SandboxedEnvironment

    env = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=False)
    return env.from_string(template.text).render(prompt=prompt).strip()
