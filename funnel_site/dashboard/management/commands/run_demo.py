"""python manage.py run_demo: the product's main job on the embedded defaults.

Migrates, creates an admin login and a `demo` workspace with generated events, then starts a real
Celery worker process and the web server, and prints the URL and the login last, once the site
answers. Ctrl-C stops both. The password and the API key made on the first run are kept in
<VAR_DIR>/demo-credentials.json and reused (DEMO_ADMIN_PASSWORD sets the password instead). The
console stays quiet unless something is wrong: TensorFlow's C++ notices, Celery's banner and its
warning about running as root, and kombu's "no hostname" notice are turned off for the demo only.
"""

from __future__ import annotations

import json
import logging
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
READY_WAIT_SECONDS = 120


def credentials_path() -> Path:
    """Where the demo keeps the admin password and API key it made (not in the repository)."""
    return Path(settings.VAR_DIR) / "demo-credentials.json"


def _load_credentials() -> dict:
    try:
        return json.loads(credentials_path().read_text())
    except (OSError, ValueError):
        return {}


def _save_credentials(password: str, key: str) -> None:
    path = credentials_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"admin_password": password, "api_key": key}, indent=2) + "\n")
    path.chmod(0o600)


def quiet_env(base: dict) -> dict:
    """The children's environment: only real problems on the console (each can be overridden)."""
    env = dict(base)
    env.setdefault("DJANGO_SETTINGS_MODULE", "funnel_site.settings")
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ INFO/WARNING (oneDNN, CPU features)
    env.setdefault("LOG_LEVEL", "WARNING")
    # the filesystem transport has no host; naming one stops kombu's warning on every connection
    if "CELERY_BROKER_URL" not in base:
        env["CELERY_BROKER_URL"] = "filesystem://localhost/"
    return env


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
        if "LOG_LEVEL" not in os.environ:
            logging.getLogger().setLevel(logging.WARNING)
        call_command("migrate", interactive=False, verbosity=0)
        stored = _load_credentials()
        password = os.environ.get("DEMO_ADMIN_PASSWORD") or stored.get("admin_password") or secrets.token_urlsafe(9)
        user_model = get_user_model()
        admin, _ = user_model.objects.get_or_create(
            username="admin", defaults={"is_staff": True, "is_superuser": True, "email": "admin@example.com"}
        )
        admin.is_staff = admin.is_superuser = True
        admin.set_password(password)
        admin.save()

        from funnel_site.events.services import api_key_create, api_key_verify, workspace_create

        workspace = Workspace.objects.filter(slug="demo").first()
        if workspace is None:
            workspace, key = workspace_create(slug="demo", name="Demo shop")
        else:
            key = stored.get("api_key") or ""
            verified = api_key_verify(key=key) if key else None
            if verified is None or verified.workspace_id != workspace.pk:
                _, key = api_key_create(workspace=workspace, name="run_demo")
        _save_credentials(password, key)
        Membership.objects.get_or_create(workspace=workspace, user=admin)
        self.stdout.write(f"Generating events for {options['contacts']} contacts (same seed: nothing twice)...")
        call_command("generate_events", workspace="demo", contacts=options["contacts"], seed=options["seed"],
                     stdout=self.stdout)
        self._after_data(workspace)
        self._build_read_model(workspace)
        url = f"http://{options['host']}:{options['port']}/"
        banner = (
            f"\n{'=' * 64}\nDemo ready.\n  URL:      {url}\n  login:    admin / {password}\n"
            f"  API key:  {key}  (workspace 'demo')\n  API docs: {url}api/docs/\n"
            f"  kept in {credentials_path()} for the next run (DEMO_ADMIN_PASSWORD sets the password;\n"
            f"  DEMO_ARGS='--contacts 20000' makes more data)\n"
        )
        if options["no_serve"]:
            self.stdout.write(banner + "=" * 64 + "\n")
            return
        self._serve(options, banner)

    def _after_data(self, workspace) -> None:
        """Hooks for later parts of the product (saved funnels, first model) on the demo data."""
        for hook in getattr(settings, "DEMO_SETUP_HOOKS", []):
            from django.utils.module_loading import import_string

            import_string(hook)(workspace=workspace, stdout=self.stdout)

    def _build_read_model(self, workspace) -> None:
        """Write the read model's snapshot now, so the web and worker processes map it at their first
        funnel instead of each reading every event from the database (issue 8: the demo's first
        funnel under a second). Only a reader's call: it reads exactly the committed events, and
        later batches reach the snapshot through the ingest log as usual."""
        from funnel_site.events.columns import column_cache, workspace_columns

        started = time.perf_counter()
        cols = workspace_columns(workspace.id)
        column_cache.clear()  # this process serves nothing: let the mapped files go
        if cols.on_disk:
            self.stdout.write(f"Read model written: {cols.size} events in {time.perf_counter() - started:.1f}s")

    def _serve(self, options: dict, banner: str) -> None:
        env = quiet_env(os.environ)
        env.setdefault("DJANGO_SETTINGS_MODULE", "funnel_site.settings")
        # the server refuses the development fallbacks with DEBUG off: the demo brings its own
        # key (kept under the var dir, so sessions survive a restart) and its own host names
        env.setdefault("SECRET_KEY", _demo_secret_key())
        env.setdefault("ALLOWED_HOSTS", ",".join(dict.fromkeys([options["host"], "127.0.0.1", "localhost"])))
        worker_flags = ["-W", "ignore:You're running the worker with superuser privileges"]  # a demo runs as root
        stop = False

        def _stop(*_):
            nonlocal stop
            stop = True

        # before the children start: a TERM while waiting for them must still stop them
        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)
        names = ["celery worker", "gunicorn"]
        procs = [
            subprocess.Popen(
                [sys.executable, *worker_flags, "-m", "celery", "-A", "funnel_site", "--quiet", "worker", "-Q",
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
        try:
            ready = self._wait_ready(options, procs, lambda: stop)
            if not stop:
                note = "" if ready else "  (the site has not answered /readyz yet: see the messages above)\n"
                self.stdout.write(banner + note + "  (Ctrl-C stops the web server and the worker)\n" + "=" * 64 + "\n")
                self.stdout.flush()
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
        failed = [name for name, p in zip(names, procs, strict=True) if p.returncode not in (0, None, -signal.SIGTERM)]
        if failed and not stop:
            sys.exit(f"{', '.join(failed)} stopped unexpectedly")

    @staticmethod
    def _wait_ready(options: dict, procs: list, stopped) -> bool:
        """Wait until the web server answers /readyz (so the banner is the last thing printed)."""
        import urllib.request

        url = f"http://{options['host']}:{options['port']}/readyz"
        deadline = time.monotonic() + READY_WAIT_SECONDS
        while time.monotonic() < deadline and not stopped() and all(p.poll() is None for p in procs):
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        time.sleep(1.0)  # let the worker finish starting too
                        return True
            except OSError:
                pass
            time.sleep(0.5)
        return False
