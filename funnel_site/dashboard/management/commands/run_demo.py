"""python manage.py run_demo: the product's main job on the embedded defaults.

Migrates, creates an admin login and a `demo` workspace with generated events, then starts a real
Celery worker process and the web server, and prints the URL and the login. Ctrl-C stops both.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import BaseCommand, call_command

from funnel_site.events.models import Membership, Workspace

ROOT = Path(settings.BASE_DIR)


def _demo_secret_key() -> str:
    """A random SECRET_KEY for the demo, made once and kept in VAR_DIR/demo-secret-key (mode 600)."""
    path = Path(settings.VAR_DIR) / "demo-secret-key"
    if not path.exists():
        path.touch(mode=0o600)
        path.write_text(secrets.token_urlsafe(50))
    return path.read_text().strip()


class Command(BaseCommand):
    help = "Set up a demo workspace with generated data and run the web server and a worker."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--contacts", type=int, default=3000, help="synthetic contacts to generate")
        parser.add_argument("--seed", type=int, default=1)
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--no-serve", action="store_true", help="set up only; start nothing")

    def handle(self, *args, **options) -> None:
        call_command("migrate", interactive=False, verbosity=0)
        password = os.environ.get("DEMO_ADMIN_PASSWORD") or secrets.token_urlsafe(9)
        user_model = get_user_model()
        admin, _ = user_model.objects.get_or_create(
            username="admin", defaults={"is_staff": True, "is_superuser": True, "email": "admin@example.com"}
        )
        admin.is_staff = admin.is_superuser = True
        admin.set_password(password)
        admin.save()

        workspace = Workspace.objects.filter(slug="demo").first()
        if workspace is None:
            from funnel_site.events.services import workspace_create

            workspace, key = workspace_create(slug="demo", name="Demo shop")
        else:
            from funnel_site.events.services import api_key_create

            _, key = api_key_create(workspace=workspace, name="run_demo")
        Membership.objects.get_or_create(workspace=workspace, user=admin)
        self.stdout.write(f"Generating events for {options['contacts']} contacts (same seed: nothing twice)...")
        call_command("generate_events", workspace="demo", contacts=options["contacts"], seed=options["seed"],
                     stdout=self.stdout)
        self._after_data(workspace)
        url = f"http://{options['host']}:{options['port']}/"
        banner = (
            f"\nDemo ready.\n  URL:      {url}\n  login:    admin / {password}\n"
            f"  API key:  {key}  (workspace 'demo')\n  API docs: {url}api/docs/\n"
        )
        if options["no_serve"]:
            self.stdout.write(banner)
            return
        self._serve(options, banner)

    def _after_data(self, workspace) -> None:
        """Hooks for later parts of the product (saved funnels, first model) on the demo data."""
        for hook in getattr(settings, "DEMO_SETUP_HOOKS", []):
            from django.utils.module_loading import import_string

            import_string(hook)(workspace=workspace, stdout=self.stdout)

    def _serve(self, options: dict, banner: str) -> None:
        env = dict(os.environ)
        env.setdefault("DJANGO_SETTINGS_MODULE", "funnel_site.settings")
        # the server refuses the development fallbacks with DEBUG off: the demo brings its own
        # key (kept under the var dir, so sessions survive a restart) and its own host names
        env.setdefault("SECRET_KEY", _demo_secret_key())
        env.setdefault("ALLOWED_HOSTS", ",".join(dict.fromkeys([options["host"], "127.0.0.1", "localhost"])))
        procs = [
            subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "funnel_site", "worker", "-Q",
                 "ingest,training,scoring,sync", "--concurrency", "2", "--loglevel", "WARNING",
                 "-n", "demo@%h",
                 # the periodic tasks too (funnel_site/schedules.py: stranded-work recovery every 30 s)
                 "-B", "-s", str(Path(settings.VAR_DIR) / "celerybeat-schedule")],
                cwd=ROOT, env=env,
            ),
            subprocess.Popen(
                [sys.executable, "-m", "gunicorn", "-c", str(ROOT / "gunicorn.conf.py"), "funnel_site.wsgi",
                 "--bind", f"{options['host']}:{options['port']}", "--workers", "2"],
                cwd=ROOT, env=env,
            ),
        ]
        self.stdout.write(banner + "  (Ctrl-C stops the web server and the worker)\n")
        self.stdout.flush()
        stop = False

        def _stop(*_):
            nonlocal stop
            stop = True

        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)
        try:
            while not stop and all(p.poll() is None for p in procs):
                time.sleep(0.5)
        finally:
            for p in procs:
                if p.poll() is None:
                    p.terminate()
            for p in procs:
                try:
                    p.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    p.kill()
        failed = [p.args[2] for p in procs if p.returncode not in (0, None, -signal.SIGTERM)]
        if failed and not stop:
            sys.exit(f"{', '.join(failed)} stopped unexpectedly")
