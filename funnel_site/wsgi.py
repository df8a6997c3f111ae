"""WSGI entry point (gunicorn -c gunicorn.conf.py funnel_site.wsgi).

With DEBUG off it refuses to start on the fallback SECRET_KEY or a wildcard ALLOWED_HOSTS.
"""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "funnel_site.settings")
application = get_wsgi_application()

from funnel_site.security import require_safe_server_settings  # noqa: E402  (needs the settings loaded)

require_safe_server_settings()
