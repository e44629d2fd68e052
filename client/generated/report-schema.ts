/**
 * Generated from client/openapi.json (`npm run -s client:generate`): the API's `ReportBody`
 * schema, self-contained. Do not edit.
 */
export const reportBodySchema = {
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "type": "object",
  "properties": {
    "caseId": {
      "type": "string",
      "pattern": "^[A-Za-z0-9._:-]{1,128}$"
    },
    "subjects": {
      "type": "array",
      "items": {
        "$ref": "#/$defs/Subject"
      },
      "minItems": 1,
      "maxItems": 8
    },
    "category": {
      "type": "string",
      "enum": [
        "ai_generated_image",
        "edited_image",
        "reused_image",
        "staged_damage",
        "other_forgery"
      ]
    },
    "incidentAt": {
      "type": "string",
      "format": "date-time"
    },
    "confirmedAt": {
      "type": "string",
      "format": "date-time"
    },
    "confirmation": {
      "type": "string",
      "enum": [
        "manual_review",
        "merchant_evidence",
        "platform_forensics",
        "police_report",
        "court_ruling"
      ]
    },
    "confirmationRef": {
      "type": [
        "string",
        "null"
      ],
      "minLength": 1,
      "maxLength": 128,
      "pattern": "^(?!\\s)[^\\p{Cc}\\p{Cf}\\p{Zl}\\p{Zp}]*(?<!\\s)$",
      "description": "With `police_report` or `court_ruling` only: the report's or ruling's reference, which the consortium verifies before the record weighs as a strong confirmation (docs/scoring.md §2)"
    },
    "amount": {
      "$ref": "#/$defs/Amount"
    },
    "evidence": {
      "type": "array",
      "items": {
        "$ref": "#/$defs/Evidence"
      },
      "maxItems": 16,
      "default": []
    },
    "note": {
      "type": [
        "string",
        "null"
      ],
      "maxLength": 500
    },
    "subjectNotifiedAt": {
      "type": [
        "string",
        "null"
      ],
      "format": "date-time"
    }
  },
  "required": [
    "caseId",
    "subjects",
    "category",
    "incidentAt",
    "confirmedAt",
    "confirmation",
    "amount"
  ],
  "additionalProperties": false,
  "$defs": {
    "Subject": {
      "type": "object",
      "properties": {
        "type": {
          "type": "string",
          "enum": [
            "phone",
            "email",
            "national_id",
            "device",
            "payment_account"
          ]
        },
        "hash": {
          "type": "string",
          "pattern": "^[0-9a-f]{64}$"
        }
      },
      "required": [
        "type",
        "hash"
      ],
      "additionalProperties": false
    },
    "Amount": {
      "type": "object",
      "properties": {
        "value": {
          "type": "integer",
          "minimum": 1,
          "maximum": 1000000000000,
          "format": "int64"
        },
        "currency": {
          "type": "string",
          "pattern": "^[A-Z]{3}$"
        }
      },
      "required": [
        "value",
        "currency"
      ],
      "additionalProperties": false
    },
    "Evidence": {
      "oneOf": [
        {
          "type": "object",
          "properties": {
            "kind": {
              "type": "string",
              "enum": [
                "image_pdq"
              ]
            },
            "value": {
              "type": "string",
              "pattern": "^[0-9a-f]{64}$"
            },
            "quality": {
              "type": "integer",
              "minimum": 0,
              "maximum": 100,
              "format": "int32"
            }
          },
          "required": [
            "kind",
            "value",
            "quality"
          ],
          "additionalProperties": false
        },
        {
          "$ref": "#/$defs/ProvenanceEvidence"
        },
        {
          "type": "object",
          "properties": {
            "kind": {
              "type": "string",
              "enum": [
                "image_sha256",
                "image_phash",
                "ai_label",
                "packing_video",
                "forensic_report",
                "other"
              ]
            },
            "value": {
              "type": "string",
              "minLength": 1,
              "maxLength": 256
            }
          },
          "required": [
            "kind",
            "value"
          ],
          "additionalProperties": false
        }
      ]
    },
    "ProvenanceEvidence": {
      "type": "object",
      "properties": {
        "kind": {
          "type": "string",
          "enum": [
            "image_provenance"
          ]
        },
        "c2pa": {
          "type": "object",
          "properties": {
            "present": {
              "type": "boolean"
            },
            "digitalSourceTypes": {
              "type": "array",
              "items": {
                "type": "string",
                "minLength": 1,
                "maxLength": 200,
                "pattern": "^(?:https?:\\/\\/[A-Za-z0-9.-]+(?::\\d{1,5})?(?:[/?#][!-~]*)?|urn:[A-Za-z0-9][A-Za-z0-9-]{0,31}:[!-~]+)$"
              },
              "maxItems": 8
            },
            "aiGenerated": {
              "type": "boolean"
            },
            "claimGenerator": {
              "type": [
                "string",
                "null"
              ],
              "minLength": 1,
              "maxLength": 200,
              "pattern": "^(?!\\s)[^\\p{Cc}\\p{Cf}\\p{Zl}\\p{Zp}]*(?<!\\s)$"
            }
          },
          "required": [
            "present",
            "digitalSourceTypes",
            "aiGenerated",
            "claimGenerator"
          ],
          "additionalProperties": false
        },
        "aiLabel": {
          "type": [
            "object",
            "null"
          ],
          "properties": {
            "label": {
              "type": [
                "string",
                "null"
              ],
              "minLength": 1,
              "maxLength": 16,
              "pattern": "^[!-~]+$"
            },
            "contentProducer": {
              "type": [
                "string",
                "null"
              ],
              "minLength": 1,
              "maxLength": 128,
              "pattern": "^(?!\\s)[^\\p{Cc}\\p{Cf}\\p{Zl}\\p{Zp}]*(?<!\\s)$"
            },
            "produceId": {
              "type": [
                "string",
                "null"
              ],
              "minLength": 1,
              "maxLength": 128,
              "pattern": "^[!-~]+$"
            },
            "reservedCode1": {
              "type": [
                "string",
                "null"
              ],
              "minLength": 1,
              "maxLength": 256,
              "pattern": "^[!-~]+$"
            },
            "contentPropagator": {
              "type": [
                "string",
                "null"
              ],
              "minLength": 1,
              "maxLength": 128,
              "pattern": "^(?!\\s)[^\\p{Cc}\\p{Cf}\\p{Zl}\\p{Zp}]*(?<!\\s)$"
            },
            "propagateId": {
              "type": [
                "string",
                "null"
              ],
              "minLength": 1,
              "maxLength": 128,
              "pattern": "^[!-~]+$"
            },
            "reservedCode2": {
              "type": [
                "string",
                "null"
              ],
              "minLength": 1,
              "maxLength": 256,
              "pattern": "^[!-~]+$"
            }
          },
          "required": [
            "label",
            "contentProducer",
            "produceId",
            "reservedCode1",
            "contentPropagator",
            "propagateId",
            "reservedCode2"
          ],
          "additionalProperties": false
        },
        "exif": {
          "type": [
            "object",
            "null"
          ],
          "properties": {
            "make": {
              "type": [
                "string",
                "null"
              ],
              "minLength": 1,
              "maxLength": 64,
              "pattern": "^(?!\\s)[^\\p{Cc}\\p{Cf}\\p{Zl}\\p{Zp}]*(?<!\\s)$"
            },
            "model": {
              "type": [
                "string",
                "null"
              ],
              "minLength": 1,
              "maxLength": 64,
              "pattern": "^(?!\\s)[^\\p{Cc}\\p{Cf}\\p{Zl}\\p{Zp}]*(?<!\\s)$"
            },
            "software": {
              "type": [
                "string",
                "null"
              ],
              "minLength": 1,
              "maxLength": 128,
              "pattern": "^(?!\\s)[^\\p{Cc}\\p{Cf}\\p{Zl}\\p{Zp}]*(?<!\\s)$"
            },
            "dateTimeOriginal": {
              "type": [
                "string",
                "null"
              ],
              "pattern": "^\\d{4}-\\d{2}-\\d{2}T\\d{2}:\\d{2}:\\d{2}(?:[+-]\\d{2}:\\d{2})?$"
            }
          },
          "required": [
            "make",
            "model",
            "software",
            "dateTimeOriginal"
          ],
          "additionalProperties": false
        }
      },
      "required": [
        "kind",
        "c2pa",
        "aiLabel",
        "exif"
      ],
      "additionalProperties": false
    }
  }
};
