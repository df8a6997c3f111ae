"""OpenAPI descriptions of our authentication classes (drf-spectacular extensions)."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class ApiKeyScheme(OpenApiAuthenticationExtension):
    target_class = "funnel_site.events.auth.ApiKeyAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "description": "a workspace API key (fk_…)"}


class SegmentScheme(OpenApiAuthenticationExtension):
    target_class = "funnel_site.events.auth.SegmentBasicAuthentication"
    name = "segmentBasic"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "basic", "description": "the API key as user name (Segment)"}


ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {"type": "string", "description": "what is wrong, in one sentence"},
        "field": {"type": "string", "nullable": True, "description": "the field or parameter at fault"},
        "detail": {"description": "the validation errors per field, when there are several"},
    },
}
_ERROR_REF = {"$ref": "#/components/schemas/Error"}
_COMMON = {
    "401": "no API key, or an invalid or revoked one",
    "403": "the key's role may not do this (viewer < editor < admin)",
    "429": "too many requests (per key) or failed key attempts (per address): wait Retry-After seconds",
}
_INGEST_PATHS = ("/api/v1/events", "/v1/")


def _error_response(description: str, headers: dict | None = None) -> dict:
    response = {"description": description, "content": {"application/json": {"schema": _ERROR_REF}}}
    if headers:
        response["headers"] = headers
    return response


def document_errors(result, generator, request, public):
    """drf-spectacular postprocessing hook: the error answers every operation can give (401, 403,
    429; 400 with a body or parameters; 404 with an id in the path; 413/415 on ingestion), all with
    the one error body `{"error", "field", "detail"}` of funnel_site.events.apis.exception_handler."""
    result.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR_SCHEMA
    retry_after = {"Retry-After": {"schema": {"type": "integer"}, "description": "seconds to wait"}}
    for path, operations in result.get("paths", {}).items():
        for method, operation in operations.items():
            if method not in ("get", "post", "put", "patch", "delete"):
                continue
            responses = operation.setdefault("responses", {})
            for code, description in _COMMON.items():
                responses.setdefault(code, _error_response(description, retry_after if code == "429" else None))
            ingest = method == "post" and path.startswith(_INGEST_PATHS)
            if ingest:
                result_ref = responses.get("200", {}).get("content", {}).get("application/json", {}).get("schema")
                responses["400"] = {
                    "description": "every item was rejected (the errors say why), or the body is unreadable",
                    "content": {"application/json": {"schema": {"oneOf": [result_ref, _ERROR_REF]} if result_ref
                                                     else _ERROR_REF}},
                }
                responses.setdefault("413", _error_response("body or batch over its limit"))
                responses.setdefault("415", _error_response("Content-Encoding other than gzip"))
            if operation.get("requestBody") or operation.get("parameters"):
                _fill(responses, "400", "invalid input: `field` names the parameter or field")
            _fill(responses, "404", "no such object in this workspace (or no active model of the target)")
            for code, response in responses.items():
                if code.startswith(("4", "5")) and "content" not in response:
                    response["content"] = {"application/json": {"schema": _ERROR_REF}}
    return result


def _fill(responses: dict, code: str, description: str) -> None:
    responses.setdefault(code, _error_response(description))
