"""gunicorn settings of the product (gunicorn -c gunicorn.conf.py funnel_site.wsgi); every value can
be changed from the environment. README "Production" explains each."""

import gc
import multiprocessing
import os

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("WEB_CONCURRENCY", str(min(2 * multiprocessing.cpu_count() + 1, 8))))
# Threads per worker: a request waiting on PostgreSQL (a webhook's durable insert, an API read)
# leaves the worker free for the next one; 1 gives the plain sync worker.
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
worker_class = "gthread" if threads > 1 else "sync"
# The application is loaded once, in the master, and forked: every worker (and every worker replaced
# after max_requests) starts with Django imported and the funnel kernels loaded. Loaded per worker,
# each start spent seconds of CPU (over a minute with numba's cache cold) beside the workers serving
# requests, which is what the inbound webhooks' p99 measured. The master opens no database or
# broker connection while loading. GUNICORN_PRELOAD=0 loads per worker (e.g. to reload code).
preload_app = os.environ.get("GUNICORN_PRELOAD", "1").lower() not in ("0", "false", "no", "off")


def pre_fork(server, worker):
    """Freeze what the master loaded (Django, numpy, the funnel kernels: ~200,000 objects) before each
    fork: the cyclic GC then never walks them in a worker. A full collection over them took ~110 ms,
    stalling every request of that worker when it struck: the inbound webhooks' p99. Frozen objects
    are also never written by the GC, so their pages stay shared with the master (copy-on-write)."""
    if preload_app:
        gc.freeze()


# gunicorn 27 binds a control socket at one path per user (~/.gunicorn/gunicorn.ctl): two
# instances on one host collide. Off unless GUNICORN_CONTROL_SOCKET names this instance's own path.
_control = os.environ.get("GUNICORN_CONTROL_SOCKET", "")
control_socket_disable = not _control
if _control:
    control_socket = _control

# Request time is bounded: a funnel query stops itself at FUNNEL_QUERY_TIMEOUT_SECONDS (60) and
# answers 503; the worker is killed only past that plus a margin for serialising the answer.
_query_timeout = float(os.environ.get("FUNNEL_QUERY_TIMEOUT_SECONDS", "60"))
timeout = int(os.environ.get("GUNICORN_TIMEOUT", str(int(_query_timeout) + 30)))
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "30"))
keepalive = int(os.environ.get("GUNICORN_KEEPALIVE", "5"))
# a worker is replaced after this many requests (memory held by numpy arrays and caches is returned)
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", "2000"))
max_requests_jitter = max_requests // 10
# the request line and headers stay small; bodies are bounded by INGEST_MAX_BODY_BYTES in the views
limit_request_line = 8190
limit_request_fields = 100
limit_request_field_size = 8190
# behind a proxy: whose X-Forwarded-* headers to trust (comma separated addresses)
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
accesslog = os.environ.get("GUNICORN_ACCESS_LOG") or None
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOG_LEVEL", "warning")
