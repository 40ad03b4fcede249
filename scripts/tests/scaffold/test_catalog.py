"""The documentation stays true: generated files are current, every command it shows exists, every link resolves.

- Each chart's README.md is what helm-docs writes from its README.md.gotmpl and values.yaml (run into a scratch copy),
  and each app's catalog-info.yaml and mkdocs.yml are what `gitops docs` generates.
- Every `make X` shown in Markdown is a target of the Makefile (as `make -p` reads it), and every `gitops X Y --opt`
  is a command of the CLI's click tree with that option.
- Every relative link in every Markdown file of the repository points at a file or folder that exists, and its
  `#anchor` at a heading of that file.
"""

from __future__ import annotations

import re
import shlex
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import click
import pytest

from gitops.scaffold import catalog, reference

REPO = Path(__file__).resolve().parents[3]
CHARTS = sorted(p.parent for p in (REPO / "apps").glob(f"*/chart/{reference.CHART_README_TEMPLATE}"))


def markdown_files() -> list[Path]:
    """The repository's Markdown, as git sees it (tracked, or new and not ignored): no venvs, caches or build output."""
    out = subprocess.run(
        ["git", "-C", str(REPO), "ls-files", "--cached", "--others", "--exclude-standard", "-z", "--", "*.md"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return sorted(REPO / n for n in set(out.split("\0")) if n and (REPO / n).is_file())


# --- generated files ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def helm_docs() -> list[str]:
    from gitops.errors import GitopsError

    try:
        return catalog.helm_docs_command(Path("<chart>"))
    except GitopsError as e:
        pytest.fail(str(e))  # names `make tools`


def test_every_chart_has_a_readme_template() -> None:
    charts = sorted(p.parent for p in (REPO / "apps").glob("*/chart/Chart.yaml"))
    assert charts and charts == CHARTS, (
        f"charts without {reference.CHART_README_TEMPLATE}: {sorted(set(charts) - set(CHARTS))}"
    )


@pytest.mark.toolchain
@pytest.mark.parametrize("chart", CHARTS, ids=lambda p: p.parent.name)
def test_chart_readme_is_what_helm_docs_writes(chart: Path, helm_docs: list[str]) -> None:
    expected = catalog.chart_readme(chart)
    readme = chart / "README.md"
    command = " ".join(catalog.helm_docs_command(chart.relative_to(REPO)))
    assert readme.is_file() and readme.read_text() == expected, (
        f"{readme.relative_to(REPO)} is out of date with values.yaml: run `gitops docs` (helm-docs: {command})"
    )


@pytest.mark.toolchain
def test_catalog_entries_and_techdocs_config_are_current(helm_docs: list[str]) -> None:
    stale = [g.path for g in catalog.stale_docs(REPO)]
    assert not stale, f"out of date: {', '.join(stale)}: run `gitops docs`"


# --- commands -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Snippet:
    file: str
    line: int
    text: str  # a line of a code block, or an inline code span


FENCE = re.compile(r"^\s*(```|~~~)")
INLINE_CODE = re.compile(r"(`+)(.+?)\1")


def snippets(path: Path, text: str) -> Iterator[Snippet]:
    """Code in a Markdown file: every line of a fenced block and every inline code span outside blocks."""
    rel = path.relative_to(REPO).as_posix() if path.is_relative_to(REPO) else path.name
    in_block = False
    for n, line in enumerate(text.splitlines(), 1):
        if FENCE.match(line):
            in_block = not in_block
            continue
        if in_block:
            yield Snippet(rel, n, line)
        else:
            for m in INLINE_CODE.finditer(line):
                yield Snippet(rel, n, m.group(2).strip())


@cache
def make_targets() -> frozenset[str]:
    """The Makefile's targets as make itself reads them (`make -p`: the database, nothing is run with -q)."""
    proc = subprocess.run(
        ["make", "--no-print-directory", "-pRrq", "-f", str(REPO / "Makefile"), "-C", str(REPO)],
        capture_output=True,
        text=True,
    )
    targets = set()
    lines = proc.stdout.splitlines()
    for i, line in enumerate(lines):
        m = re.match(r"^([A-Za-z0-9][\w.-]*):(?!=)", line)
        if m and not (i > 0 and lines[i - 1].startswith("# Not a target")):
            targets.add(m.group(1))
    assert "test" in targets, f"could not read the Makefile's targets:\n{proc.stderr}"
    return frozenset(targets)


GITOPS = re.compile(r"^(?:gitops|(?:.*/)?bin/gitops|\$\(BIN\)/gitops)$")
ENV_ASSIGNMENT = re.compile(r"^[A-Z_][A-Z0-9_]*=")


def commands_in(snippet: str) -> Iterator[list[str]]:
    """Each `make …` or `gitops …` command of a snippet, as tokens (environment assignments in front dropped)."""
    for part in re.split(r"&&|;|\s\|\s|\$\(|\)", snippet):
        try:
            tokens = shlex.split(part, comments=True)
        except ValueError:
            tokens = part.split()
        while tokens and ENV_ASSIGNMENT.match(tokens[0]):
            tokens = tokens[1:]
        if tokens and (tokens[0] == "make" or GITOPS.match(tokens[0])):
            yield tokens


def command_problem(tokens: list[str]) -> str | None:
    """What is wrong with one command, or None."""
    if tokens[0] == "make":
        missing = [t for t in tokens[1:] if not t.startswith("-") and "=" not in t and t not in make_targets()]
        return f"`make {' '.join(missing)}`: no such target in the Makefile" if missing else None
    from gitops.cli import main

    command: click.Command = main
    path = ["gitops"]
    args = tokens[1:]
    while isinstance(command, click.Group) and args and not args[0].startswith("-"):
        sub = command.get_command(click.Context(command), args[0])
        if sub is None:
            return f"`{' '.join([*path, args[0]])}`: no such command (known: {', '.join(command.list_commands(None))})"  # type: ignore[arg-type]
        command, path, args = sub, [*path, args[0]], args[1:]
    options = {"--help", "-h"} | {o for p in command.params for o in (*p.opts, *p.secondary_opts)}
    unknown = [a.split("=", 1)[0] for a in args if a.startswith("-") and a.split("=", 1)[0] not in options]
    if unknown:
        return f"`{' '.join(path)}` has no option {', '.join(unknown)}"
    # An environment is named with --env everywhere; as a bare argument the command refuses it (validate) or takes
    # it for something else, and a reader following the docs gets an error.
    envs = {p.name for p in (REPO / "environments").iterdir() if p.is_dir()}
    values = {o for p in command.params for o in p.opts if isinstance(p, click.Option) and not p.is_flag}
    bare = [a for i, a in enumerate(args) if a in envs and not (i and args[i - 1] in values)]
    return f"`{' '.join(path)} {' '.join(bare)}`: an environment is named with --env" if bare else None


def command_problems(path: Path, text: str) -> list[str]:
    out = []
    for s in snippets(path, text):
        for tokens in commands_in(s.text):
            problem = command_problem(tokens)
            if problem:
                out.append(f"{s.file}:{s.line}: {problem}")
    return out


def test_every_command_in_the_docs_exists() -> None:
    problems = [p for f in markdown_files() for p in command_problems(f, f.read_text())]
    assert not problems, "\n".join(problems)


def test_the_command_check_finds_what_does_not_exist() -> None:
    text = (
        "Run `make test`, then `gitops validate --live` and `PORT=9000 make run`.\n\n"
        "```sh\nmake deploy\n.venv/bin/gitops tools path helm && gitops frobnicate\ngitops promote --form dev\n```\n"
        "`gitops cluster nope` and `make help`, `gitops validate prod`, `gitops diff a b --env prod`\n"
    )
    problems = command_problems(REPO / "x.md", text)
    assert [p.split(" (known")[0] for p in problems] == [
        "x.md:4: `make deploy`: no such target in the Makefile",
        "x.md:5: `gitops frobnicate`: no such command",
        "x.md:6: `gitops promote` has no option --form",
        "x.md:8: `gitops cluster nope`: no such command",
        "x.md:8: `gitops validate prod`: an environment is named with --env",
    ]


# --- links --------------------------------------------------------------------------------------------------------

LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+\"[^\"]*\")?\s*$")
HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
EXTERNAL = re.compile(r"^[a-z][a-z0-9+.-]*:", re.IGNORECASE)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: the rendered text, lowercased, punctuation dropped, spaces as hyphens."""
    text = re.sub(r"`([^`]*)`", r"\1", heading)
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", text)
    text = re.sub(r"<[^>]+>", "", text).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def prose(text: str, *, keep_code: bool = False) -> Iterator[tuple[int, str]]:
    """Lines outside fenced code, with inline code removed unless asked: links are only looked for where Markdown
    renders them, while a heading's anchor includes the text of its code spans."""
    in_block = False
    for n, line in enumerate(text.splitlines(), 1):
        if FENCE.match(line):
            in_block = not in_block
            continue
        if not in_block:
            yield n, line if keep_code else INLINE_CODE.sub("", line)


def anchors(text: str) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    for _, line in prose(text, keep_code=True):
        m = HEADING.match(line)
        if not m:
            continue
        base = slug(m.group(2))
        count = seen.get(base, 0)
        seen[base] = count + 1
        out.add(base if count == 0 else f"{base}-{count}")
    return out


def link_problems(path: Path, text: str) -> list[str]:
    rel = path.relative_to(REPO).as_posix() if path.is_relative_to(REPO) else path.name
    out = []
    for n, line in prose(text):
        targets = [m.group(1) for m in LINK.finditer(line)]
        ref = REFERENCE.match(line)
        if ref:
            targets.append(ref.group(1))
        for target in targets:
            if EXTERNAL.match(target):
                continue
            file_part, _, anchor = target.partition("#")
            # A leading `/` is the repository's root, as GitHub resolves it: such links survive a chart being copied.
            base = REPO if file_part.startswith("/") else path.parent
            dest = (base / file_part.lstrip("/")).resolve() if file_part else path
            if file_part and not dest.exists():
                out.append(f"{rel}:{n}: {target}: {file_part} does not exist")
                continue
            if anchor and dest.suffix == ".md" and (dest == path or dest.is_file()):
                found = anchors(dest.read_text() if dest != path else text)
                if anchor not in found:
                    out.append(f"{rel}:{n}: {target}: no heading #{anchor} in {dest.name}")
    return out


def test_every_relative_link_resolves() -> None:
    problems = [p for f in markdown_files() for p in link_problems(f, f.read_text())]
    assert not problems, "\n".join(problems)


def test_the_link_check_finds_broken_links_and_anchors() -> None:
    text = (
        "# Top `title`\n\n## Roll back: a release\n\n"
        "[ok](#roll-back-a-release) [ok](README.md) [ok](docs/) [web](https://example.com/x)\n"
        "[gone](nope.md) [bad anchor](#missing) [other file's anchor](README.md#no-such-heading)\n"
        "`[in code](ignored.md)`\n```\n[in a block](ignored.md)\n```\n[ref]: missing/file.md\n"
        "[root](/docs/adr/index.md) [root gone](/docs/nope.md)\n"
    )
    assert link_problems(REPO / "x.md", text) == [
        "x.md:6: nope.md: nope.md does not exist",
        "x.md:6: #missing: no heading #missing in x.md",
        "x.md:6: README.md#no-such-heading: no heading #no-such-heading in README.md",
        "x.md:11: missing/file.md: missing/file.md does not exist",
        "x.md:12: /docs/nope.md: /docs/nope.md does not exist",
    ]
    assert anchors(text) == {"top-title", "roll-back-a-release"}


def test_the_adr_index_links_every_decision() -> None:
    adr = REPO / "docs" / "adr"
    index = (adr / "index.md").read_text()
    linked = {m.group(1).partition("#")[0] for m in LINK.finditer(index)}
    records = {p.name for p in adr.glob("[0-9][0-9][0-9][0-9]-*.md")}
    assert records <= linked, f"not in docs/adr/index.md: {sorted(records - linked)}"
