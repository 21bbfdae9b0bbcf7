//! The OpenAPI 3.0 description served at `/openapi.json`.

use serde_json::{Value as Json, json};

pub fn document() -> Json {
    let error = |description: &str| {
        json!({
            "description": description,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
        })
    };
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "onepipe http-producer",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Produce plain-JSON records to onepipe topics. Every record of a \
                request is checked against the topic's Avro schema in the registry; a request \
                is all or nothing: if any record is invalid nothing is produced and the 422 \
                reply names every failing record and field. A 200 reply is sent only after \
                Kafka acknowledged every record (acks=all, idempotent producer)."
        },
        "paths": {
            "/v1/topics/{topic}/records": {
                "post": {
                    "summary": "Produce a batch of records to a topic",
                    "operationId": "produceRecords",
                    "parameters": [
                        {"name": "topic", "in": "path", "required": true,
                         "schema": {"type": "string"}},
                        {"name": "schema_version", "in": "query", "required": false,
                         "description": "Validate and encode with this version of the topic's \
                            subject instead of the latest",
                         "schema": {"type": "integer", "minimum": 1}},
                        {"name": "traceparent", "in": "header", "required": false,
                         "description": "W3C trace context, copied into each record's headers",
                         "schema": {"type": "string"}}
                    ],
                    "security": [{"bearer": []}, {"apiKey": []}, {}],
                    "requestBody": {
                        "required": true,
                        "content": {
                            "application/json": {
                                "schema": {"$ref": "#/components/schemas/Batch"}
                            },
                            "application/x-ndjson": {
                                "schema": {"type": "string",
                                    "description": "one record value (a JSON object) per line"}
                            }
                        }
                    },
                    "responses": {
                        "200": {
                            "description": "Every record was acknowledged by Kafka",
                            "content": {"application/json": {
                                "schema": {"$ref": "#/components/schemas/Produced"}}}
                        },
                        "400": error("Malformed body (not JSON, not UTF-8, empty batch, bad parameter)"),
                        "401": error("API keys are configured and none or an unknown one was sent"),
                        "403": error("The API key may not produce to this topic"),
                        "404": error("Unknown topic or schema version"),
                        "413": error("Body or record count over the limits"),
                        "415": error("Content type other than application/json or application/x-ndjson"),
                        "422": error("Records that do not fit the schema; details list each by index"),
                        "503": error("Kafka or the registry could not take the records in time, or \
                            http-producer is at its limit of concurrent requests; retry after \
                            the Retry-After header's seconds")
                    }
                }
            }
        },
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"}
            },
            "schemas": {
                "Batch": {
                    "type": "object",
                    "required": ["records"],
                    "additionalProperties": false,
                    "properties": {"records": {"type": "array", "minItems": 1, "items": {
                        "type": "object",
                        "required": ["value"],
                        "additionalProperties": false,
                        "properties": {
                            "value": {"description": "The record as plain JSON (see the README's \
                                JSON mapping of Avro types)"},
                            "key": {"description": "Optional; when given it must equal the \
                                unique key built from the value: a JSON array of the unique-key \
                                fields"},
                            "headers": {"type": "object",
                                "additionalProperties": {"type": "string"}}
                        }
                    }}}
                },
                "Produced": {
                    "type": "object",
                    "properties": {
                        "topic": {"type": "string"},
                        "schema_id": {"type": "integer"},
                        "schema_version": {"type": "integer"},
                        "offsets": {"type": "array", "items": {
                            "type": "object",
                            "properties": {
                                "partition": {"type": "integer"},
                                "offset": {"type": "integer"}
                            }
                        }}
                    }
                },
                "Error": {
                    "type": "object",
                    "properties": {"error": {
                        "type": "object",
                        "required": ["code", "message"],
                        "properties": {
                            "code": {"type": "string", "enum": ["malformed_request",
                                "unauthenticated", "forbidden", "unknown_topic",
                                "unknown_schema_version", "not_found", "too_large",
                                "unsupported_media_type", "invalid_records", "unavailable",
                                "internal"]},
                            "message": {"type": "string"},
                            "details": {"type": "array", "items": {
                                "type": "object",
                                "properties": {
                                    "index": {"type": "integer"},
                                    "errors": {"type": "array", "items": {
                                        "type": "object",
                                        "properties": {
                                            "path": {"type": "string"},
                                            "message": {"type": "string"}
                                        }
                                    }},
                                    "error": {"type": "string"}
                                }
                            }}
                        }
                    }}
                }
            }
        }
    })
}
