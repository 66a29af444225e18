"""Renders the peer programs of this directory and checks that they render what weave renders.

    run_peers.py probe PEER
        Exits 0 when PEER can render here (its library imports and evaluates a small program),
        else 1 with the reason on stderr.
    run_peers.py render PEER TOPOLOGY.yaml OUTDIR
        One whole render, as a team's CI job would run it: read the topology file, evaluate the
        program, write every file under OUTDIR. Prints one JSON line: the seconds spent evaluating
        (reading and parsing the topology included) and writing, and the files and bytes written.
    run_peers.py compare WEAVE_OUT PEER_OUT
        Compares the objects under PEER_OUT/k8s with the same objects under WEAVE_OUT/k8s (per site
        the agents' Namespace and the default-deny NetworkPolicy; per agent its ServiceAccount,
        ConfigMap, Deployment, Services and PodDisruptionBudget; weave writes more, which is left
        out), field by field, with the agent config parsed and the `managed-by` label left out.
        Checks that each Deployment's config-sha256 annotation is the digest of its ConfigMap's
        config. Prints one JSON line of counts and exits 1 on any difference.

PEER is `jsonnet` (manifests.jsonnet on go-jsonnet, PyPI `gojsonnet`), `jrsonnet` (the same
manifests.jsonnet on jrsonnet, the Rust Jsonnet, crates.io `jrsonnet`: the binary named by
WEAVE_BENCH_JRSONNET, default bench/.jrsonnet/bin/jrsonnet), `kcl` (manifests.k on PyPI `kcl-lib`) or
`jinja2` (manifests.yaml.j2 on PyPI `jinja2`, the topology read with PyYAML). All but jrsonnet are
in-process libraries, so the evaluation time is measured around the library call; jrsonnet's is its
process, from start to exit.
"""

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

PEERS_DIRECTORY = Path(__file__).resolve().parent
PEERS = ("jsonnet", "jrsonnet", "kcl", "jinja2")
JRSONNET = Path(os.environ.get("WEAVE_BENCH_JRSONNET", PEERS_DIRECTORY.parent / ".jrsonnet" / "bin" / "jrsonnet"))

# The kinds weave emits per agent that the peers render too.
AGENT_KINDS = {"ServiceAccount", "ConfigMap", "Deployment", "Service", "PodDisruptionBudget"}
MANAGED_BY = "app.kubernetes.io/managed-by"
CONFIG_DIGEST = "agentweave.io/config-sha256"
CONFIG_KEY = "config.yaml"


def yaml_loader():
    import yaml

    return getattr(yaml, "CSafeLoader", yaml.SafeLoader)


# ------------------------------------------------------------------------------------------ render


def render_jsonnet(topology_path, _work):
    import _gojsonnet

    text = Path(topology_path).read_text(encoding="utf-8")
    result = _gojsonnet.evaluate_file(str(PEERS_DIRECTORY / "manifests.jsonnet"), tla_vars={"topologyYaml": text})
    return json.loads(result)


def jrsonnet(program_arguments):
    # The topology's text as the top-level argument, read by the program itself (`importstr`): the
    # command line cannot carry a 10 MB string.
    completed = subprocess.run([str(JRSONNET), *program_arguments], capture_output=True, text=True)
    if completed.returncode != 0:
        raise RuntimeError(completed.stderr.strip() or f"jrsonnet exited {completed.returncode}")
    return json.loads(completed.stdout)


def render_jrsonnet(topology_path, _work):
    argument = "topologyYaml=importstr " + json.dumps(str(Path(topology_path).resolve()))
    return jrsonnet(["--tla-code", argument, str(PEERS_DIRECTORY / "manifests.jsonnet")])


def render_kcl(topology_path, work):
    import kcl_lib.api as kcl

    # KCL's file.read refuses paths outside the program's directory (through a symbolic link too):
    # the program runs as a copy beside a copy of the topology.
    program = Path(work) / "manifests.k"
    shutil.copyfile(PEERS_DIRECTORY / "manifests.k", program)
    topology = Path(work) / "topology.yaml"
    shutil.copyfile(topology_path, topology)
    arguments = kcl.ExecProgramArgs(
        work_dir=str(work),
        k_filename_list=[str(program)],
        args=[kcl.Argument(name="topology_file", value=json.dumps(str(topology)))],
    )
    result = kcl.API().exec_program(arguments)
    if result.err_message:
        raise RuntimeError(result.err_message)
    return json.loads(result.json_result)["files"]


def render_jinja2(topology_path, _work):
    import jinja2
    import yaml

    with open(topology_path, encoding="utf-8") as stream:
        topology = yaml.load(stream, Loader=yaml_loader())
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(PEERS_DIRECTORY)),
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,
        autoescape=False,
    )
    environment.filters["sha256"] = lambda text: hashlib.sha256(str(text).encode()).hexdigest()
    site_of = {agent["name"]: name for name, site in topology["sites"].items() for agent in site.get("agents") or []}
    module = environment.get_template("manifests.yaml.j2").make_module({"topology": topology, "site_of": site_of})
    files = {}
    for site_name, site in topology["sites"].items():
        agents = site.get("agents") or []
        if not agents:
            continue
        files[f"k8s/{site_name}/spire/namespaces.yaml"] = str(module.namespaces(site_name, site))
        files[f"k8s/{site_name}/mesh/networkpolicy.yaml"] = str(module.network_policy(site_name, site))
        for agent in agents:
            files[f"k8s/{site_name}/agents/{agent['name']}.yaml"] = str(module.agent_file(site_name, site, agent))
    return files


RENDERERS = {"jsonnet": render_jsonnet, "jrsonnet": render_jrsonnet, "kcl": render_kcl, "jinja2": render_jinja2}


def render(peer, topology_path, out_directory):
    out = Path(out_directory)
    out.mkdir(parents=True, exist_ok=True)
    # Scratch space (KCL's copies) on the output's file system, outside OUTDIR.
    with tempfile.TemporaryDirectory(prefix="peer-work-", dir=out.parent) as work:
        started = time.perf_counter()
        files = RENDERERS[peer](topology_path, work)
        evaluated = time.perf_counter()
        created = set()
        written = 0
        for relative, text in files.items():
            path = out / relative
            if path.parent not in created:
                path.parent.mkdir(parents=True, exist_ok=True)
                created.add(path.parent)
            data = text.encode("utf-8")
            path.write_bytes(data)
            written += len(data)
        finished = time.perf_counter()
    print(
        json.dumps(
            {
                "evaluate": evaluated - started,
                "write": finished - evaluated,
                "files": len(files),
                "bytes": written,
            }
        )
    )


def probe(peer):
    """Renders nothing: imports the peer's library and evaluates a one-line program."""
    try:
        if peer == "jsonnet":
            import _gojsonnet

            assert json.loads(_gojsonnet.evaluate_snippet("probe", "std.sha256('')")) == hashlib.sha256(b"").hexdigest()
        elif peer == "jrsonnet":
            assert jrsonnet(["-e", "std.sha256('')"]) == hashlib.sha256(b"").hexdigest()
        elif peer == "kcl":
            import kcl_lib.api as kcl

            with tempfile.TemporaryDirectory() as work:
                program = Path(work) / "probe.k"
                program.write_text("import yaml\nvalue = yaml.decode('a: 1').a\n", encoding="utf-8")
                result = kcl.API().exec_program(kcl.ExecProgramArgs(k_filename_list=[str(program)]))
                if result.err_message:
                    raise RuntimeError(result.err_message.strip())
                assert json.loads(result.json_result)["value"] == 1
        elif peer == "jinja2":
            import jinja2
            import yaml  # noqa: F401 (the jinja2 peer reads the topology with it)

            assert jinja2.Template("{{ 1 + 1 }}").render() == "2"
        else:
            raise ValueError(f"unknown peer {peer}")
    except Exception as error:  # noqa: BLE001 (any failure means the peer cannot run here)
        print(f"{type(error).__name__}: {error}".strip().splitlines()[0], file=sys.stderr)
        return 1
    return 0


# ----------------------------------------------------------------------------------------- compare


def documents(tree):
    """Every Kubernetes object under TREE/k8s."""
    import yaml

    root = Path(tree, "k8s")
    if not root.is_dir():
        raise SystemExit(f"{root}: no such directory")
    for path in sorted(root.rglob("*.yaml")):
        with open(path, encoding="utf-8") as stream:
            for document in yaml.load_all(stream, Loader=yaml_loader()):
                if isinstance(document, dict) and "kind" in document:
                    yield document


def in_subset(document):
    """Whether weave's object is one of those the peers render."""
    kind = document.get("kind")
    metadata = document.get("metadata") or {}
    labels = metadata.get("labels") or {}
    component = labels.get("app.kubernetes.io/component")
    if kind in AGENT_KINDS:
        return component == "agent"
    if kind == "Namespace":
        return component == "agents"
    if kind == "NetworkPolicy":
        return metadata.get("name") == "default-deny"
    return False


def keyed(tree, subset_only):
    """(kind, site, namespace, name) → object, and the config-digest mismatches found."""
    import yaml

    objects = {}
    for document in documents(tree):
        if subset_only and not in_subset(document):
            continue
        metadata = document.get("metadata") or {}
        site = (metadata.get("labels") or {}).get("agentweave.io/site")
        key = (document["kind"], site, metadata.get("namespace"), metadata.get("name"))
        objects[key] = document
    digest_errors = []
    for (kind, site, namespace, name), document in objects.items():
        if kind != "Deployment":
            continue
        template = document.get("spec", {}).get("template", {}).get("metadata", {})
        annotation = (template.get("annotations") or {}).get(CONFIG_DIGEST)
        config_map = objects.get(("ConfigMap", site, namespace, f"{name}-config"))
        text = ((config_map or {}).get("data") or {}).get(CONFIG_KEY)
        if text is None or annotation != hashlib.sha256(text.encode()).hexdigest():
            digest_errors.append(f"{site}/{name}: {CONFIG_DIGEST} is not the digest of its config")
    # Compared as data: the config's text differs in key order and quoting between tools.
    for document in objects.values():
        if document["kind"] == "ConfigMap" and CONFIG_KEY in (document.get("data") or {}):
            document["data"][CONFIG_KEY] = yaml.load(document["data"][CONFIG_KEY], Loader=yaml_loader())
        for metadata in (document.get("metadata"), document.get("spec", {}).get("template", {}).get("metadata")):
            if isinstance(metadata, dict):
                (metadata.get("labels") or {}).pop(MANAGED_BY, None)
                (metadata.get("annotations") or {}).pop(CONFIG_DIGEST, None)
    return objects, digest_errors


def differences(left, right, path=""):
    """The paths at which two parsed YAML values differ."""
    if isinstance(left, dict) and isinstance(right, dict):
        for key in sorted(set(left) | set(right), key=str):
            if key not in left:
                yield f"{path}.{key}: only in the peer"
            elif key not in right:
                yield f"{path}.{key}: only in weave"
            else:
                yield from differences(left[key], right[key], f"{path}.{key}")
    elif isinstance(left, list) and isinstance(right, list):
        if len(left) != len(right):
            yield f"{path}: {len(left)} items in weave, {len(right)} in the peer"
        for position, (left_item, right_item) in enumerate(zip(left, right)):
            yield from differences(left_item, right_item, f"{path}[{position}]")
    elif left != right or type(left) is not type(right):
        yield f"{path}: {left!r} in weave, {right!r} in the peer"


def compare(weave_out, peer_out):
    weave_objects, weave_digest_errors = keyed(weave_out, subset_only=True)
    peer_objects, peer_digest_errors = keyed(peer_out, subset_only=False)
    problems = [f"weave: {error}" for error in weave_digest_errors] + [
        f"peer: {error}" for error in peer_digest_errors
    ]
    problems += [f"only in weave: {'/'.join(map(str, key))}" for key in sorted(set(weave_objects) - set(peer_objects))]
    problems += [f"only in the peer: {'/'.join(map(str, key))}" for key in sorted(set(peer_objects) - set(weave_objects))]
    identical = 0
    differing = 0
    for key in sorted(set(weave_objects) & set(peer_objects)):
        found = list(differences(weave_objects[key], peer_objects[key]))
        if found:
            differing += 1
            problems += [f"{'/'.join(map(str, key))}{difference}" for difference in found]
        else:
            identical += 1
    weave_counts = Counter(kind for kind, _, _, _ in weave_objects)
    peer_counts = Counter(kind for kind, _, _, _ in peer_objects)
    kinds = sorted(set(weave_counts) | set(peer_counts))
    for problem in problems[:20]:
        print(problem, file=sys.stderr)
    print(
        json.dumps(
            {
                "weave": {kind: weave_counts[kind] for kind in kinds},
                "peer": {kind: peer_counts[kind] for kind in kinds},
                "identical": identical,
                "differing": differing,
                "problems": len(problems),
                "first_problem": problems[0] if problems else None,
            }
        )
    )
    return 0 if not problems else 1


def main(arguments):
    if len(arguments) == 2 and arguments[0] == "probe" and arguments[1] in PEERS:
        return probe(arguments[1])
    if len(arguments) == 4 and arguments[0] == "render" and arguments[1] in PEERS:
        render(arguments[1], arguments[2], arguments[3])
        return 0
    if len(arguments) == 3 and arguments[0] == "compare":
        return compare(arguments[1], arguments[2])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
