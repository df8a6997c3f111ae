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
