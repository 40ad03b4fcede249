from __future__ import annotations

import pytest

from pod_details.settings import PodIdentity, Settings, SettingsError


def test_defaults_are_production_values() -> None:
    s = Settings.from_env({})
    assert s.bind == "0.0.0.0:8080"
    assert (s.web_concurrency, s.threads) == (1, 8)
    assert s.drain_seconds == 10 and s.graceful_timeout_seconds == 15
    assert s.git_commit == "unknown" and s.kubeconfig is None
    assert s.pod == PodIdentity()


def test_reads_every_variable() -> None:
    s = Settings.from_env(
        {
            "PORT": "9000",
            "WEB_CONCURRENCY": "3",
            "GUNICORN_THREADS": "2",
            "DRAIN_SECONDS": "0.5",
            "GRACEFUL_TIMEOUT_SECONDS": "7",
            "CACHE_TTL_SECONDS": "12.5",
            "KUBE_TIMEOUT_SECONDS": "1",
            "MAX_CONTENT_LENGTH": "10",
            "LOG_LEVEL": "debug",
            "GIT_COMMIT": "abc123",
            "KUBECONFIG": "/k",
            "POD_NAME": "p",
            "POD_NAMESPACE": "ns",
            "NODE_NAME": "n",
            "POD_IP": "10.0.0.1",
            "POD_SERVICE_ACCOUNT": "sa",
        }
    )
    assert s.bind == "0.0.0.0:9000"
    assert (s.web_concurrency, s.threads, s.graceful_timeout_seconds) == (3, 2, 7)
    assert (s.drain_seconds, s.cache_ttl_seconds, s.kube_timeout_seconds) == (0.5, 12.5, 1.0)
    assert (s.max_content_length, s.log_level, s.git_commit, s.kubeconfig) == (10, "DEBUG", "abc123", "/k")
    assert s.pod == PodIdentity("p", "ns", "n", "10.0.0.1", "sa")


def test_bind_wins_over_port() -> None:
    assert Settings.from_env({"PORT": "1", "BIND": "127.0.0.1:2"}).bind == "127.0.0.1:2"


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("CACHE_TTL_SECONDS", "abc", "expected a number of seconds between 1 and 86400"),
        ("CACHE_TTL_SECONDS", "nan", "expected a number of seconds"),
        ("KUBE_TIMEOUT_SECONDS", "0", "expected a number of seconds between 0.1 and 60"),
        ("DRAIN_SECONDS", "-1", "expected a number of seconds between 0 and 300"),
        ("GRACEFUL_TIMEOUT_SECONDS", "2.5", "expected a whole number between 1 and 300"),
        ("WEB_CONCURRENCY", "0", "expected a whole number between 1 and 64"),
        ("GUNICORN_THREADS", "many", "expected a whole number"),
        ("MAX_CONTENT_LENGTH", "1e3", "expected a whole number"),
        ("PORT", "70000", "expected a whole number between 1 and 65535"),
        ("BIND", "localhost", "expected HOST:PORT"),
        ("LOG_LEVEL", "loud", "expected one of DEBUG, INFO, WARNING, ERROR"),
        ("GIT_COMMIT", "a b", "expected a commit id"),
    ],
)
def test_bad_value_names_the_variable_and_what_was_expected(name: str, value: str, expected: str) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({name: value})
    message = str(caught.value)
    assert message.startswith(f"{name}={value!r} is invalid: ")
    assert expected in message
    assert "\n" not in message
