"""`python -m pod_details`: validate the settings, then serve with gunicorn exactly as the container does."""

from __future__ import annotations

import sys

from pod_details.settings import Settings, SettingsError


def main(argv: list[str] | None = None) -> int:
    try:
        Settings.from_env()
    except SettingsError as exc:
        print(f"pod-details: {exc}", file=sys.stderr)
        return 2
    from gunicorn.app.wsgiapp import run

    sys.argv = ["gunicorn", "--config", "python:pod_details.gunicorn_conf", "pod_details.wsgi:app", *(argv or [])]
    run()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
