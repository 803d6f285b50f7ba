#!/usr/bin/env python3
"""Writes the traffic-split Wasm module as an OCI image layout that Istio's image fetcher loads.

The image is the *oci* variant of the Wasm image specification (solo-io/wasm, spec/spec.md),
as Istio reads it (istio/istio, pkg/wasm/imagefetcher.go, extractOCIArtifactImage):

  manifest  application/vnd.oci.image.manifest.v1+json
  config    application/vnd.module.wasm.config.v1+json          the runtime config below
  layer 1   application/vnd.module.wasm.config.v1+json          the same runtime config
  layer 2   application/vnd.module.wasm.content.layer.v1+wasm   the module, byte for byte

Istio insists on exactly two layers for this variant and takes the module from the
`...content.layer.v1+wasm` one without unpacking it, so the layer digest is the module's sha256.
Everything written is a pure function of the module bytes and the version (no timestamps), so
the same module always gives the same manifest digest: the value of `WasmPlugin.spec.sha256`.

Writing a layout is only files (oci-layout, index.json, blobs/sha256/...); pushing it to a
registry is left to an OCI client (`make push` uses skopeo).
"""

import argparse
import hashlib
import json
import os
import shutil
import sys
import tempfile
import tomllib
from pathlib import Path

MANIFEST_MEDIA_TYPE = "application/vnd.oci.image.manifest.v1+json"
INDEX_MEDIA_TYPE = "application/vnd.oci.image.index.v1+json"
WASM_CONFIG_MEDIA_TYPE = "application/vnd.module.wasm.config.v1+json"
WASM_LAYER_MEDIA_TYPE = "application/vnd.module.wasm.content.layer.v1+wasm"
TITLE = "org.opencontainers.image.title"

ROOT = Path(__file__).resolve().parent.parent
# The root id envoy/envoy.yaml uses; the module answers to any root id.
ROOT_ID = "traffic-split"


def crate_version():
    with open(ROOT / "Cargo.toml", "rb") as cargo:
        return tomllib.load(cargo)["package"]["version"]


def read_leb128(data, offset):
    """An unsigned LEB128 integer at `offset`: (value, offset after it)."""
    value, shift = 0, 0
    while True:
        if offset >= len(data):
            raise ValueError("truncated LEB128 integer")
        byte = data[offset]
        offset += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, offset


def exported_names(module):
    """The names in a Wasm binary's export section; ValueError if it is not a Wasm module."""
    if module[:8] != b"\0asm\x01\0\0\0":
        raise ValueError("not a WebAssembly 1.0 binary")
    offset = 8
    while offset < len(module):
        section_id = module[offset]
        size, offset = read_leb128(module, offset + 1)
        end = offset + size
        if section_id == 7:  # the export section
            names = []
            count, cursor = read_leb128(module, offset)
            for _ in range(count):
                length, cursor = read_leb128(module, cursor)
                names.append(module[cursor:cursor + length].decode("utf-8"))
                _index, cursor = read_leb128(module, cursor + length + 1)  # + export kind
            return names
        offset = end
    return []


def runtime_config(module):
    """The `application/vnd.module.wasm.config.v1+json` document: runtime, ABI and root ids."""
    abi_versions = sorted(name for name in exported_names(module)
                          if name.startswith("proxy_abi_version_"))
    if not abi_versions:
        raise ValueError("the module exports no proxy_abi_version_*: not a proxy-wasm module")
    return {"type": "envoy_proxy", "abiVersions": abi_versions,
            "config": {"root_ids": [ROOT_ID]}}


def canonical_json(document):
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def write_blob(layout, content):
    """Stores `content` under blobs/sha256/ and returns its descriptor fields."""
    digest = hashlib.sha256(content).hexdigest()
    (layout / "blobs" / "sha256" / digest).write_bytes(content)
    return {"digest": f"sha256:{digest}", "size": len(content)}


def write_layout(module, layout, tag, version):
    """Writes the layout into the empty folder `layout`; returns the manifest's descriptor."""
    (layout / "blobs" / "sha256").mkdir(parents=True)
    config = write_blob(layout, canonical_json(runtime_config(module)))
    wasm = write_blob(layout, module)
    manifest = {
        "schemaVersion": 2,
        "mediaType": MANIFEST_MEDIA_TYPE,
        "config": {"mediaType": WASM_CONFIG_MEDIA_TYPE, **config},
        "layers": [
            {"mediaType": WASM_CONFIG_MEDIA_TYPE, **config,
             "annotations": {TITLE: "runtime-config.json"}},
            {"mediaType": WASM_LAYER_MEDIA_TYPE, **wasm,
             "annotations": {TITLE: "plugin.wasm"}},
        ],
        "annotations": {
            TITLE: "traffic-split",
            "org.opencontainers.image.version": version,
            "org.opencontainers.image.licenses": "Apache-2.0",
        },
    }
    descriptor = {"mediaType": MANIFEST_MEDIA_TYPE, **write_blob(layout, canonical_json(manifest))}
    index = {
        "schemaVersion": 2,
        "mediaType": INDEX_MEDIA_TYPE,
        "manifests": [{**descriptor, "annotations": {"org.opencontainers.image.ref.name": tag}}],
    }
    (layout / "index.json").write_bytes(canonical_json(index))
    (layout / "oci-layout").write_bytes(canonical_json({"imageLayoutVersion": "1.0.0"}))
    return descriptor


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--module", required=True, type=Path, help="the .wasm file to package")
    parser.add_argument("--layout", required=True, type=Path,
                        help="the OCI layout folder to (re)write, e.g. build/oci/traffic-split")
    parser.add_argument("--tag", help="the tag in the layout (default: the crate version)")
    args = parser.parse_args()

    version = crate_version()
    tag = args.tag or version
    module = args.module.read_bytes()
    try:
        runtime_config(module)
    except ValueError as error:
        sys.exit(f"{args.module}: {error}")

    # Written beside the old layout and swapped in whole: no stale blobs or tags survive, and
    # a half-written layout never sits at the final path.
    args.layout.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{args.layout.name}-", dir=args.layout.parent))
    try:
        descriptor = write_layout(module, staging / "layout", tag, version)
        shutil.rmtree(args.layout, ignore_errors=True)
        os.replace(staging / "layout", args.layout)
    finally:
        shutil.rmtree(staging, ignore_errors=True)

    module_digest = hashlib.sha256(module).hexdigest()
    print(f"OCI image layout: {args.layout}:{tag}")
    print(f"  module layer    sha256:{module_digest} ({len(module)} bytes, {args.module})")
    print(f"  manifest        {descriptor['digest']}")
    print(f"WasmPlugin.spec.sha256: {descriptor['digest'].removeprefix('sha256:')}")


if __name__ == "__main__":
    main()
