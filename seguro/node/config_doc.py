"""docs/configuration.md, generated from NodeConfig: every key's type, default, flag and description.

Regenerate it with `python -m seguro.node.config_doc > docs/configuration.md`; a test fails while the
file differs from what this prints."""

from __future__ import annotations

from dataclasses import MISSING, Field, fields

from seguro.node.config import NodeConfig

COMMAND = "python -m seguro.node.config_doc > docs/configuration.md"

# What TOML value each annotation takes.
TYPES = {
    "str": "string",
    "Path": "string (a path)",
    "tuple[str, ...]": "string or list of strings",
    "int": "integer",
    "float": "number",
    "bool": "boolean",
    "bool | None": "boolean or unset",
}

EXAMPLE = """\
node_id = "n1"
ship = "zod"
data_dir = "/var/lib/seguro/n1"
etcd = ["http://10.0.0.1:2379", "http://10.0.0.2:2379", "http://10.0.0.3:2379"]
grpc = "0.0.0.0:7000"
advertise_grpc = "10.0.0.11:7000"
udp = "0.0.0.0:34543"
http = "127.0.0.1:8080"
ack_replicas = 1
insecure = true  # plaintext on a private network; with TLS, set tls_ca, tls_cert, tls_key (https:// etcd)
"""

HEADER = f"""\
# Node configuration

<!-- Generated from seguro/node/config.py by `{COMMAND}`; do not edit by hand. -->

A node reads its settings from one TOML file (`seguro node run --config node.toml`) and/or from flags of
`seguro node run`; a flag overrides the file's key. Every setting is both a key and a flag, except
`--config`, `--ready-file` and `--log-level`, which are flags only. The node checks every setting before
it starts: an unknown key, a value of the wrong type or out of range, or settings that exclude each other
stop it with an error naming the setting.

For example:

```toml
{EXAMPLE}```

"""

NOTES = """
Notes:

- `etcd` takes `http://` URLs or bare `HOST:PORT`. An `https://` URL is refused: it needs TLS settings,
  which a node does not have yet.
- `ack_replicas` is not checked against the number of replicas, which one node's settings cannot know: a
  master with fewer followers than `ack_replicas` holds each event's effects back until enough
  followers hold it.
"""


def _default(f: Field) -> str:
    value = f.default
    if value is MISSING:
        return "required"
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, str):
        return f'`"{value}"`'
    if isinstance(value, tuple):
        return "`[]`"
    if isinstance(value, int) and value >= 1 << 20 and value % (1 << 20) == 0:
        return f"`{value}` ({value >> 20} MiB)"
    return f"`{value}`"


def _cell(text: str) -> str:
    """Markdown table text: a | would end the cell, a <word> would vanish as an HTML tag."""
    return text.replace("|", "\\|").replace("<", "&lt;")


def render() -> str:
    """The whole of docs/configuration.md."""
    rows = ["| key | type | default | flag | description |", "|---|---|---|---|---|"]
    for f in fields(NodeConfig):
        flag = f.metadata["flag"]
        doc = f.metadata["doc"]
        rows.append(f"| `{f.name}` | {TYPES[str(f.type)]} | {_default(f)} | `{flag}` | {_cell(doc)} |")
    return HEADER + "\n".join(rows) + "\n" + NOTES


def main() -> None:
    print(render(), end="")


if __name__ == "__main__":
    main()
