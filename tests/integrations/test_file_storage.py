"""File exports through Django's storage API (INTEGRATIONS_FILE_STORAGE names a STORAGES alias):
a FileSystemStorage, and django-storages' S3Storage against moto's S3 server (a real HTTP server
following the S3 API, on this machine)."""

from __future__ import annotations

import csv
import json
import socket

import pytest
from django.test import override_settings

from integrations.engine import sync_run_execute
from integrations.services import (
    IntegrationError,
    destination_create,
    destination_test,
    sync_create,
    sync_run_request,
)
from tests.integrations.helpers import leave, members, segment

pytestmark = pytest.mark.django_db(transaction=True)
BASE_STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}


def _run(sync):
    run, _ = sync_run_request(sync=sync, enqueue=False)
    return sync_run_execute(run_id=run.pk)


def _export_sync(ws, path: str):
    seg = segment(ws)
    members(ws, seg, ["u0", "u1", "u2"])
    dest = destination_create(workspace=ws, kind="file", name="export", settings={"path": path}, credentials={})
    return seg, sync_create(workspace=ws, segment=seg.pk, destination=dest.pk, mode="mirror",
                            field_mapping={"PLAN": "trait:plan"}, max_removal_share=0.5)


def test_filesystem_storage_alias_receives_the_export_atomically(workspace_with_key, tmp_path):
    storages = {**BASE_STORAGES, "exports": {"BACKEND": "django.core.files.storage.FileSystemStorage",
                                             "OPTIONS": {"location": str(tmp_path / "bucket")}}}
    with override_settings(STORAGES=storages, INTEGRATIONS_FILE_STORAGE="exports",
                           INTEGRATIONS_FILE_ROOT=tmp_path / "local-root"):
        ws = workspace_with_key[0]
        seg, sync = _export_sync(ws, "daily/vip.csv")
        ok, message = destination_test(destination=sync.destination)
        assert ok and "will be created" in message, message
        assert _run(sync).status == "succeeded"
        rows = list(csv.DictReader((tmp_path / "bucket" / "daily" / "vip.csv").read_text().splitlines()))
        assert [r["contact_id"] for r in rows] == ["u0", "u1", "u2"] and rows[0]["PLAN"] == "pro"
        leave(seg, ["u1"])
        _run(sync)
        rows = list(csv.DictReader((tmp_path / "bucket" / "daily" / "vip.csv").read_text().splitlines()))
        assert [r["contact_id"] for r in rows] == ["u0", "u2"]
        assert [p.name for p in (tmp_path / "bucket" / "daily").iterdir()] == ["vip.csv"]  # replaced, no temp left
        assert not (tmp_path / "local-root").exists()  # the local default is not used
        with pytest.raises(IntegrationError, match="relative path inside the export storage"):
            destination_create(workspace=ws, kind="file", name="up", settings={"path": "../x.csv"}, credentials={})


def test_unknown_storage_alias_is_a_clear_error(workspace_with_key):
    with override_settings(INTEGRATIONS_FILE_STORAGE="nope"), \
            pytest.raises(IntegrationError, match="'nope' is not an alias of STORAGES"):
        destination_create(workspace=workspace_with_key[0], kind="file", name="x", settings={"path": "a.csv"},
                           credentials={})


@pytest.fixture
def s3_server():
    """moto's S3 server in a thread, on a free port, with one bucket."""
    from moto.server import ThreadedMotoServer

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    url = f"http://127.0.0.1:{port}"
    import boto3

    client = boto3.client("s3", endpoint_url=url, region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")
    client.create_bucket(Bucket="exports")
    yield url, client
    server.stop()


def test_s3_storage_export_replaces_one_object(workspace_with_key, s3_server):
    url, client = s3_server
    storages = {**BASE_STORAGES, "exports": {"BACKEND": "storages.backends.s3.S3Storage", "OPTIONS": {
        "bucket_name": "exports", "endpoint_url": url, "region_name": "us-east-1", "location": "funnel",
        "access_key": "testing", "secret_key": "testing", "file_overwrite": True}}}
    with override_settings(STORAGES=storages, INTEGRATIONS_FILE_STORAGE="exports"):
        ws = workspace_with_key[0]
        seg, sync = _export_sync(ws, "vip.jsonl")
        ok, message = destination_test(destination=sync.destination)
        assert ok, message
        assert _run(sync).status == "succeeded"

        def exported():
            body = client.get_object(Bucket="exports", Key="funnel/vip.jsonl")["Body"].read().decode()
            return [json.loads(line)["contact_id"] for line in body.splitlines()]

        assert exported() == ["u0", "u1", "u2"]
        leave(seg, ["u0"])
        _run(sync)
        assert exported() == ["u1", "u2"]
        keys = [o["Key"] for o in client.list_objects_v2(Bucket="exports")["Contents"]]
        assert keys == ["funnel/vip.jsonl"]  # overwritten in place: no second name, no temporary object
