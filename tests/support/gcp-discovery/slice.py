#!/usr/bin/env python3
"""Cuts the slice of Google's discovery documents that the GCP contract server holds requests to.

Usage: python3 slice.py <documents dir>
where <documents dir> is googleapiclient/discovery_cache/documents/ unpacked from the
google-api-python-client wheel named in SOURCES.md:
    pip download google-api-python-client==2.202.0 --no-deps -d /tmp/gapi
    unzip /tmp/gapi/google_api_python_client-*.whl 'googleapiclient/discovery_cache/documents/*' -d /tmp/gapi

Each output document keeps the service's identity (name, version, revision, base URL), its
global query parameters, only the methods listed in METHODS (at their place in `resources`),
and every schema those methods' requests and responses reach; descriptions are dropped.
Adding a call to escher-gcp means adding its method here and running this again.
"""
import json
import os
import sys

METHODS = {
    "config.v1": [
        "projects.locations.deployments.get",
        "projects.locations.deployments.create",
        "projects.locations.deployments.patch",
        "projects.locations.deployments.delete",
        "projects.locations.deployments.revisions.get",
        "projects.locations.deployments.revisions.resources.list",
        "projects.locations.previews.create",
        "projects.locations.previews.get",
        "projects.locations.previews.delete",
        "projects.locations.previews.resourceChanges.list",
        "projects.locations.operations.get",
    ],
    "storage.v1": [
        "buckets.list",
        "buckets.get",
        "buckets.patch",
        "buckets.getIamPolicy",
        "buckets.setIamPolicy",
        "buckets.insert",
        "buckets.delete",
        "objects.insert",
        "objects.list",
        "objects.delete",
    ],
    "serviceusage.v1": ["services.batchGet", "services.batchEnable", "operations.get"],
    "iam.v1": ["projects.serviceAccounts.get", "projects.serviceAccounts.create"],
    "cloudresourcemanager.v1": ["projects.getIamPolicy", "projects.setIamPolicy"],
    "artifactregistry.v1": [
        "projects.locations.repositories.get",
        "projects.locations.repositories.create",
        "projects.locations.repositories.delete",
        "projects.locations.operations.get",
    ],
    "secretmanager.v1": [
        "projects.secrets.addVersion",
        "projects.secrets.list",
        "projects.secrets.versions.list",
        "projects.secrets.versions.destroy",
    ],
    "compute.v1": [
        "firewalls.list",
        "firewalls.get",
        "firewalls.patch",
        "instances.get",
        "instances.stop",
        "disks.get",
        "disks.aggregatedList",
        "instances.aggregatedList",
        "snapshots.list",
        "globalOperations.get",
        "globalOperations.wait",
        "zoneOperations.get",
        "zoneOperations.wait",
    ],
    "monitoring.v3": ["projects.timeSeries.list"],
    "bigquery.v2": ["jobs.query"],
    "billingbudgets.v1": ["billingAccounts.budgets.list"],
}

KEEP = ["kind", "name", "version", "revision", "rootUrl", "servicePath", "baseUrl", "parameters"]


def strip(value, names=False):
    """Drops descriptions; `names`: the keys are field or parameter names (a field may be
    called `description`), kept all."""
    if isinstance(value, dict):
        return {
            k: strip(v, k in ("properties", "parameters") and not names)
            for k, v in value.items()
            if names or (k != "description" and k != "enumDescriptions")
        }
    if isinstance(value, list):
        return [strip(v) for v in value]
    return value


def refs(value, found):
    if isinstance(value, dict):
        if "$ref" in value:
            found.add(value["$ref"])
        for v in value.values():
            refs(v, found)
    elif isinstance(value, list):
        for v in value:
            refs(v, found)


def cut(document, methods):
    out = {k: document[k] for k in KEEP if k in document}
    out["resources"] = {}
    wanted = set()
    for dotted in methods:
        *path, method = dotted.split(".")
        source, target = document, out
        for name in path:
            source = source["resources"][name]
            target = target.setdefault("resources", {}).setdefault(name, {})
        target.setdefault("methods", {})[method] = source["methods"][method]
        refs(source["methods"][method], wanted)
    schemas, todo = {}, sorted(wanted)
    while todo:
        name = todo.pop()
        if name in schemas:
            continue
        schemas[name] = document["schemas"][name]
        more = set()
        refs(schemas[name], more)
        todo.extend(sorted(more - set(schemas)))
    out["schemas"] = dict(sorted(schemas.items()))
    return strip(out)


def main():
    source = sys.argv[1]
    here = os.path.dirname(os.path.abspath(__file__))
    for name, methods in METHODS.items():
        with open(os.path.join(source, name + ".json")) as f:
            document = json.load(f)
        with open(os.path.join(here, name + ".json"), "w") as f:
            json.dump(cut(document, methods), f, indent=1, sort_keys=True)
            f.write("\n")
        print(name, document["revision"], len(methods), "methods")


if __name__ == "__main__":
    main()
