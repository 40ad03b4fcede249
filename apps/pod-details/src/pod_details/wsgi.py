"""The WSGI entry point for gunicorn: `pod_details.wsgi:app`.

The one module that does work at import: gunicorn needs an app object to import. With preload_app the import
happens once, in the master, before workers fork (see gunicorn_conf.py). The settings were already validated by the
gunicorn config, so a bad variable never gets this far with a traceback.
"""

from pod_details.app import create_app
from pod_details.settings import Settings

app = create_app(Settings.from_env())
