"""Write the JSON Schemas of the MQTT payloads (docs/schema/) from the pydantic models."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from pydantic import BaseModel

from signal_gateway.ingest.wire import SpatPayload, StatusPayload

SCHEMA_DIR = Path(__file__).resolve().parents[1] / "docs" / "schema"
MODELS: dict[str, type[BaseModel]] = {"spat.json": SpatPayload, "status.json": StatusPayload}


def render() -> dict[str, str]:
    """File name -> schema text, as it should be on disk."""
    out = {}
    for name, model in MODELS.items():
        schema = model.model_json_schema()
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        out[name] = json.dumps(schema, indent=2, ensure_ascii=False) + "\n"
    return out


def main() -> int:
    """Write the schemas; with --check, exit 1 if any file differs."""
    check = "--check" in sys.argv[1:]
    stale = []
    for name, text in render().items():
        path = SCHEMA_DIR / name
        if check:
            if not path.exists() or path.read_text() != text:
                stale.append(name)
        else:
            SCHEMA_DIR.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    if stale:
        print(f"out of date: {', '.join(stale)}; run python scripts/gen_schemas.py")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
