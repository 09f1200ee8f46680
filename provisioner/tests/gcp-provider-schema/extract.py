#!/usr/bin/env python3
"""Derives the Google provider's schema (resource type -> attributes and nested blocks,
recursively) from the jsii assembly of the PyPI package cdktn-provider-google, for the
resource and data source types the rendered module uses. No terraform binary or provider
download is needed; the package carries every attribute's Terraform name in its docs.

    pip download --no-deps -d /tmp/p cdktn-provider-google==21.1.0
    python3 extract.py /tmp/p/cdktn_provider_google-21.1.0-py3-none-any.whl \
        google_storage_bucket data.google_project ... > schema.json

Output: {"provider": "hashicorp/google 8.7.0", "types": {type: {name: null | {...}}}}:
an attribute maps to null, a block to its own members.
"""
import io
import json
import re
import sys
import tarfile
import zipfile

# "Docs at Terraform Registry: {@link https://.../docs/resources/storage_bucket#name StorageBucket#name}"
TF_NAME = re.compile(r"#([a-z0-9_]+) [A-Za-z0-9]+#[a-z0-9_]+\}")
PROVIDER = re.compile(r"hashicorp/google/([0-9.]+)/docs/(resources|data-sources)/([a-z0-9_]+)")
# Members of every generated class that are not Terraform attributes.
NOT_ATTRIBUTES = {
    "terraform_resource_type", "terraform_generator_metadata", "fqn", "friendly_unique_id",
    "node", "cdktf_stack", "terraform_meta_arguments", "raw_overrides", "count", "depends_on",
    "for_each", "lifecycle", "provider", "connection", "provisioners",
}


def assembly(wheel):
    with zipfile.ZipFile(wheel) as whl:
        name = next(n for n in whl.namelist() if n.endswith(".jsii.tgz"))
        with tarfile.open(fileobj=io.BytesIO(whl.read(name))) as tgz:
            return json.load(tgz.extractfile("package/.jsii")), name


def snake(camel):
    return re.sub(r"(?<!^)(?=[A-Z])", "_", camel).lower()


def fqns(type_ref):
    """The class names a property's type refers to (through unions and collections)."""
    if "fqn" in type_ref:
        yield type_ref["fqn"]
    for t in type_ref.get("union", {}).get("types", []):
        yield from fqns(t)
    if "collection" in type_ref:
        yield from fqns(type_ref["collection"]["elementtype"])


def members(types, fqn, depth=0):
    """The Terraform members of a config interface: attributes and, recursively, blocks."""
    out = {}
    for prop in types[fqn].get("properties", []):
        match = TF_NAME.search(prop.get("docs", {}).get("remarks", ""))
        if not match:
            continue
        nested = [f for f in fqns(prop["type"]) if f in types and types[f].get("kind") == "interface"
                  and types[f].get("datatype")]
        block = prop.get("docs", {}).get("summary", "").endswith(" block.")
        out[match.group(1)] = members(types, nested[0], depth + 1) if block and nested and depth < 12 else None
    return out


def main():
    wheel, wanted = sys.argv[1], sys.argv[2:]
    jsii, source = assembly(wheel)
    types = jsii["types"]
    classes = {}
    version = None
    for fqn, t in types.items():
        found = PROVIDER.search(t.get("docs", {}).get("summary", ""))
        if t.get("kind") == "class" and found and t.get("docs", {}).get("summary", "").startswith("Represents a"):
            version = found.group(1)
            name = "google_" + found.group(3) if not found.group(3).startswith("google_") else found.group(3)
            key = ("data." if found.group(2) == "data-sources" else "") + name
            classes[key] = fqn
    schema = {}
    for key in wanted:
        fqn = classes.get(key)
        if fqn is None:
            sys.exit(f"{key}: not a type of the provider")
        config = fqn + "Config"
        entry = members(types, config)
        # Computed attributes (read from the resource, e.g. `uri`, `writer_identity`) are
        # getters on the class itself.
        for prop in types[fqn].get("properties", []):
            name = prop["name"]
            if prop.get("static") or name.endswith("Input"):
                continue
            tf = snake(name)
            if tf not in NOT_ATTRIBUTES:
                entry.setdefault(tf, None)
        schema[key] = dict(sorted(entry.items()))
    json.dump({"provider": f"hashicorp/google {version}", "source": f"{jsii['name']} {jsii['version']}",
               "types": schema}, sys.stdout, indent=None, sort_keys=True, separators=(",", ":"))
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
