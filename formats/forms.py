"""The one place a compatibility check's input is validated (page and API)."""

from __future__ import annotations

import json

from django import forms

MODES = [("backward", "backward"), ("forward", "forward"), ("full", "full")]
KINDS = [("avro", "Avro schema"), ("json-schema", "JSON Schema"), ("sample", "a sample event (JSON)")]


class CompatibilityForm(forms.Form):
    schema = forms.CharField(max_length=200_000, strip=True)
    kind = forms.ChoiceField(choices=KINDS, initial="json-schema")
    mode = forms.ChoiceField(choices=MODES, initial="backward")

    def clean(self):
        data = super().clean()
        text = data.get("schema")
        if text is None:
            return data
        try:
            parsed = json.loads(text)
        except (ValueError, RecursionError) as exc:
            raise forms.ValidationError({"schema": f"is not JSON: {exc}"}) from None
        kind = data.get("kind")
        if kind == "avro":
            import fastavro

            try:
                fastavro.parse_schema(parsed)
            except Exception as exc:  # noqa: BLE001 - fastavro's SchemaParseException and friends
                raise forms.ValidationError({"schema": f"is not an Avro schema: {exc}"}) from None
            data["parsed"] = ("avro", text)
        elif kind == "sample":
            from formats.inference import infer

            data["parsed"] = ("inferred", infer([parsed]))
        else:
            if not isinstance(parsed, dict):
                raise forms.ValidationError({"schema": "a JSON Schema is an object"})
            data["parsed"] = ("json-schema", parsed)
        return data
