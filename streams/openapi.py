"""The OpenAPI 3.1 description of the worker's HTTP API (``api.py``), served at
``/openapi.json``. One home: the README and docs/contract.md point here."""

from __future__ import annotations

from typing import Any

from recstream.streams.api_params import MAX_EVENTS, MAX_EXCLUDE, MAX_N


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _answer(description: str, schema: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref(schema)}}}


def _param(name: str, where: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": name,
        "in": where,
        "required": where == "path",
        "description": description,
        "schema": schema,
    }


_ID = {"type": "string", "minLength": 1, "maxLength": 256}
_N = _param("n", "query", "How many items.", {"type": "integer", "minimum": 1, "maximum": MAX_N})
_CATEGORY = _param("category", "query", "Only items of this catalogue category.", _ID)
_BAD = _answer("A malformed id or parameter, with the reason.", "Error")
_DOWN = _answer("Redis or Kafka unreachable.", "Error")

_SCHEMAS: dict[str, Any] = {
    "Error": {"type": "object", "properties": {"error": {"type": "string"}}, "required": ["error"]},
    "Item": {
        "type": "object",
        "properties": {
            "item_id": {"type": "string"},
            "score": {"type": "number"},
            "because": {
                "type": "array",
                "items": {"type": "string"},
                "maxItems": 3,
                "description": "The user's history items that drove this one most, nearest "
                "first (the model's item embeddings); empty for trending items.",
            },
        },
        "required": ["item_id", "score"],
    },
    "List": {
        "type": "object",
        "description": "A recommendations record (docs/contract.md) and where it came from.",
        "properties": {
            "rec_id": {"type": ["string", "null"], "description": "Null for lists made now."},
            "user_id": {"type": "string"},
            "items": {"type": "array", "items": _ref("Item")},
            "model_version": {"type": "string"},
            "source": {"type": ["object", "null"]},
            "event_ts": {"type": ["integer", "null"]},
            "created_ts": {"type": "integer"},
            "variant": {
                "type": ["string", "null"],
                "description": "The user's A/B arm (RECSTREAM_AB); null without a test.",
            },
            "origin": {
                "enum": ["stream", "model", "trending"],
                "description": "stream: the newest list the stream made (published, attributed); "
                "model or trending: made now for this request, not published.",
            },
        },
        "required": ["user_id", "items", "model_version", "created_ts", "origin"],
    },
    "User": {
        "type": "object",
        "properties": {
            "user_id": {"type": "string"},
            "events": {"type": "integer"},
            "recent": {"type": "array", "items": {"type": "string"}},
            "seen_count": {"type": "integer"},
            "bought": {"type": "array", "items": {"type": "string"}},
            "categories": {"type": "object", "additionalProperties": {"type": "number"}},
            "served": {"type": "array", "items": {"type": "object"}},
            "latest": {"oneOf": [_ref("List"), {"type": "null"}]},
        },
    },
    "Similar": {
        "type": "object",
        "properties": {
            "item_id": {"type": "string"},
            "items": {"type": "array", "items": _ref("Item")},
            "model_version": {"type": "string"},
        },
    },
    "Popular": {
        "type": "object",
        "properties": {
            "category": {"type": ["string", "null"]},
            "items": {"type": "array", "items": _ref("Item")},
            "created_ts": {"type": "integer"},
        },
    },
    "Posted": {
        "type": "object",
        "properties": {
            "accepted": {"type": "integer"},
            "rejected": {"type": "integer"},
            "errors": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"index": {"type": "integer"}, "error": {"type": "string"}},
                },
            },
        },
    },
    "Ready": {
        "type": "object",
        "properties": {"ready": {"type": "boolean"}, "checks": {"type": "object"}},
    },
}

_PATHS: dict[str, Any] = {
    "/users/{user_id}/recommendations": {
        "get": {
            "summary": "A list for any user: the newest the stream made, or one made now",
            "description": "Without parameters (or with n up to the list's length): the newest "
            "list the stream published for this user. With category, exclude, fresh=true, a "
            "larger n, or no list yet: one made now by the model, or trending items (in the "
            "user's favourite category, else overall) for a user the model cannot encode. "
            "Never 404 for a well-formed id.",
            "parameters": [
                _param("user_id", "path", "The user.", _ID),
                _N,
                _CATEGORY,
                _param(
                    "exclude",
                    "query",
                    f"Comma-separated item ids to leave out (at most {MAX_EXCLUDE}).",
                    {"type": "string"},
                ),
                _param("fresh", "query", "Make the list now.", {"type": "boolean"}),
            ],
            "responses": {"200": _answer("The list.", "List"), "400": _BAD, "503": _DOWN},
        }
    },
    "/users/{user_id}": {
        "get": {
            "summary": "What recstream holds for a user",
            "description": "Recent items (the model's input), bought items, category weights, "
            "events applied, the lists served (for attribution) and the newest list.",
            "parameters": [_param("user_id", "path", "The user.", _ID)],
            "responses": {"200": _answer("The user.", "User"), "400": _BAD, "503": _DOWN},
        }
    },
    "/items/{item_id}/similar": {
        "get": {
            "summary": "The items nearest this one by cosine of the model's item embeddings",
            "description": "Unavailable items are left out.",
            "parameters": [_param("item_id", "path", "The item.", _ID), _N],
            "responses": {
                "200": _answer("The neighbours.", "Similar"),
                "400": _BAD,
                "404": _answer("The served model does not know the item.", "Error"),
                "503": _answer("No model is served yet.", "Error"),
            },
        }
    },
    "/popular": {
        "get": {
            "summary": "Trending items (forward-decayed popularity), overall or in a category",
            "parameters": [_CATEGORY, _N],
            "responses": {"200": _answer("Trending items.", "Popular"), "400": _BAD, "503": _DOWN},
        }
    },
    "/events": {
        "post": {
            "summary": "Publish events without a Kafka client",
            "description": "A JSON event, a JSON array of events, or NDJSON "
            f"(application/x-ndjson), at most {MAX_EVENTS}. Each is validated as on the events "
            "topic; good ones are written to it (keyed by user id, delivered before the answer), "
            "bad ones go to the dead-letter topic with the reason (source topic 'http', offset "
            "= the event's place in the request). Resend with the same event_id to be safe "
            "after a 503: the worker applies each event id once.",
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {"schema": {}},
                    "application/x-ndjson": {"schema": {"type": "string"}},
                },
            },
            "responses": {
                "202": _answer("Counts, and the reasons of the rejected.", "Posted"),
                "400": _BAD,
                "413": _answer("Too large.", "Error"),
                "503": _DOWN,
            },
        }
    },
    "/healthz": {
        "get": {
            "summary": "The process answers",
            "responses": {"200": {"description": "Alive."}},
        }
    },
    "/readyz": {
        "get": {
            "summary": "Kafka and Redis reachable; the model served",
            "responses": {
                "200": _answer("Ready.", "Ready"),
                "503": _answer("Kafka or Redis unreachable.", "Ready"),
            },
        }
    },
    "/openapi.json": {
        "get": {"summary": "This description", "responses": {"200": {"description": "OpenAPI"}}}
    },
    "/metrics": {
        "get": {
            "summary": "This worker's metrics, Prometheus text format",
            "responses": {"200": {"description": "text/plain; version=0.0.4"}},
        }
    },
}

SPEC: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "recstream worker API",
        "version": "1",
        "description": "Real-time recommendations from the worker's web port "
        "(RECSTREAM_WEB_PORT). Topics and Redis keys: docs/contract.md.",
    },
    "paths": _PATHS,
    "components": {"schemas": _SCHEMAS},
}
