"""Web processes never import TensorFlow: the URLconf, the API views and the pages load without it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_urlconf_and_api_views_do_not_import_tensorflow():
    code = (
        "import django, sys; django.setup()\n"
        "import funnel_site.urls, funnel_site.wsgi, predictions.apis, predictions.pages, predictions.services, "
        "predictions.tasks, predictions.admin\n"
        "from django.urls import get_resolver; get_resolver().url_patterns\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in {'tensorflow', 'keras', 'shap'})\n"
        "print(heavy[:5]); sys.exit(1 if heavy else 0)\n"
    )
    # a web process's environment (wsgi.py refuses the development key and wildcard hosts)
    env = {"DJANGO_SETTINGS_MODULE": "funnel_site.settings.test", "PATH": "/usr/bin:/bin",
           "PYTHONPATH": str(ROOT), "SECRET_KEY": "s" * 50, "ALLOWED_HOSTS": "localhost"}
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, f"TensorFlow imported by a web module: {done.stdout} {done.stderr[-2000:]}"
