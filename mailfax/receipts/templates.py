"""Receipt texts as Jinja2 templates: the built-in ones, each replaceable by a file in
[receipts] templates_dir; a broken replacement falls back to the built-in text, reporting why."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from importlib import resources
from pathlib import Path

from jinja2 import BaseLoader, ChoiceLoader, DictLoader, StrictUndefined, TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from mailfax.receipts.fields import KINDS, ReceiptFields, plural

# What each kind of receipt renders; the names starting with "_" are the parts they share.
ENTRY_POINTS = ("subject.txt", *(f"{kind}.{ext}" for kind in KINDS for ext in ("txt", "html")))
TEMPLATE_SUFFIXES = (".txt", ".html")

# Reports (template name, what went wrong); the I/O layer logs it.
TemplateProblem = Callable[[str, str], None]


def _ignore(name: str, problem: str) -> None:
    """The default for callers with nowhere to report (tests, previews of built-ins)."""


@functools.cache
def builtin_templates() -> Mapping[str, str]:
    """The built-in templates, from the package (mailfax/receipts/templates/)."""
    folder = resources.files("mailfax.receipts") / "templates"
    return {
        entry.name: entry.read_text(encoding="utf-8")
        for entry in folder.iterdir()
        if entry.name.endswith(TEMPLATE_SUFFIXES)
    }


def load_templates(directory: Path) -> dict[str, str]:
    """The template files in `directory` (the ones that replace built-ins, by name)."""
    return {
        path.name: path.read_text(encoding="utf-8")
        for path in sorted(directory.iterdir())
        if path.is_file() and path.name.endswith(TEMPLATE_SUFFIXES)
    }


def _environment(loader: BaseLoader) -> ImmutableSandboxedEnvironment:
    # Sandboxed: templates see the receipt's fields, never mailfax's internals. HTML is
    # escaped: subjects, file names and texts come from the sender. Undefined names are
    # errors, so a misspelt field falls back to the built-in text instead of going missing.
    environment = ImmutableSandboxedEnvironment(
        loader=loader,
        autoescape=lambda name: bool(name and name.endswith(".html")),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    environment.filters["pages"] = lambda count: plural(count, "page")
    environment.globals["plural"] = plural
    return environment


class ReceiptTemplates:
    """Renders the receipt texts; rendering itself does no I/O (templates are loaded first)."""

    def __init__(
        self, overrides: Mapping[str, str] | None = None, on_problem: TemplateProblem = _ignore
    ) -> None:
        builtin = DictLoader(dict(builtin_templates()))
        self._builtin = _environment(builtin)
        self._on_problem = on_problem
        self._custom = None
        if overrides:
            self._custom = _environment(ChoiceLoader([DictLoader(dict(overrides)), builtin]))
            for name in overrides:
                if name not in builtin_templates():
                    on_problem(name, "no built-in template has this name, so none uses it")
                    continue
                try:
                    self._custom.get_template(name)
                except TemplateError as exc:
                    on_problem(name, f"{exc.__class__.__name__}: {exc}")

    def render(self, name: str, fields: ReceiptFields) -> str:
        variables = fields.variables()
        if self._custom is not None:
            try:
                return self._custom.get_template(name).render(variables)
            # A replaced template is the operator's code: whatever it raises, the sender
            # still gets the built-in text.
            except Exception as exc:
                self._on_problem(name, f"{exc.__class__.__name__}: {exc}")
        return self._builtin.get_template(name).render(variables)
