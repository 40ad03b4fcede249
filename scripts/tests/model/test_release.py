"""`gitops.model.release`: a release.yaml read against its schema, written back without disturbing the file, and the
older format read for history only."""

from __future__ import annotations

import pytest

from gitops.errors import GitopsError
from gitops.model import release
from gitops.model.release import Pins

SHA = "a" * 40
TREE = "b" * 40
DEV = '# dev\nimage:\n  repository: docker.io/x/app\n  tag: "1.0"\n  digest: ""\n'
PROD = DEV.replace("# dev", "# prod") + f"chart:\n  commit: {SHA}\n  tree: {TREE}\n"


def test_a_first_environment_release_names_the_image_and_follows_main():
    pins = release.parse(DEV, "dev/release.yaml")
    assert pins == Pins("docker.io/x/app", "1.0", "")
    assert pins.follows and pins.revision == "main" and pins.image == "docker.io/x/app:1.0"


def test_a_promotion_target_release_names_its_chart_copy():
    pins = release.parse(PROD, "prod/release.yaml")
    assert (pins.chart_commit, pins.chart_tree) == (SHA, TREE)
    assert not pins.follows and pins.short_revision() == SHA[:12]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (DEV.replace('"1.0"', '"latest"'), "line 4: `image.tag` is 'latest': expected an immutable tag"),
        (DEV.replace('"1.0"', "1.0"), "`image.tag` is 1.0: expected an immutable tag, quoted"),
        (DEV.replace('digest: ""', "digest: sha256:xyz"), "`image.digest` is 'sha256:xyz': expected \"\" or sha256:"),
        (DEV + "extra: 1\n", "unknown key 'extra' (expected: chart, image)"),
        (DEV.replace('  digest: ""\n', ""), "`image.digest` is missing"),
        (PROD.replace(TREE, "nope"), "line 8: `chart.tree` is 'nope': expected the git tree id"),
        ("- a list\n", "expected a mapping with `image:`"),
    ],
)
def test_a_malformed_release_is_refused_naming_file_line_and_expectation(text, expected):
    with pytest.raises(GitopsError) as e:
        release.parse(text, "environments/dev/app/release.yaml")
    assert str(e.value).startswith("environments/dev/app/release.yaml: ")
    assert expected in str(e.value)


def test_the_older_format_is_read_for_history_and_refused_otherwise():
    old = DEV + f"chart:\n  revision: {SHA}\n"
    with pytest.raises(GitopsError, match="the release format from before promoted charts were copied"):
        release.parse(old, "prod/release.yaml")
    pins = release.parse(old, "prod/release.yaml", legacy=True)
    assert (pins.chart_commit, pins.chart_tree) == (SHA, "")
    assert release.parse(DEV + "chart:\n  revision: main\n", "f", legacy=True).follows


def test_update_writes_the_release_and_keeps_comments_order_and_quoting():
    new = Pins("docker.io/x/app", "2.0", "sha256:" + "c" * 64, SHA, TREE)
    text = release.update(DEV, new, "dev/release.yaml")
    assert text.startswith("# dev\nimage:\n")
    assert 'tag: "2.0"' in text and f"chart:\n  commit: {SHA}\n  tree: {TREE}\n" in text
    assert release.parse(text, "f") == new
    back = release.update(text, Pins("docker.io/x/app", "2.0", new.digest), "f")
    assert "chart" not in back, "a release that follows main names no chart"


def test_a_same_chart_and_same_image_are_told_apart_from_a_move():
    a = Pins("r", "1", "", SHA, TREE)
    assert a.same_chart(Pins("r", "2", "", SHA, TREE)) and not a.same_image(Pins("r", "2", "", SHA, TREE))
    assert not a.same_chart(Pins("r", "1", "", SHA, "c" * 40))
