"""Renders the peer programs of this directory and checks that they render what weave renders.

    run_peers.py probe PEER
        Exits 0 when PEER can render here (its library imports and evaluates a small program),
        else 1 with the reason on stderr.
    run_peers.py render PEER TOPOLOGY.yaml OUTDIR
        One whole render, as a team's CI job would run it: read the topology file, evaluate the
        program, write every file under OUTDIR. Prints one JSON line: the seconds spent evaluating
        (reading and parsing the topology included) and writing, and the files and bytes written.
    run_peers.py compare WEAVE_OUT PEER_OUT
        Compares the objects under PEER_OUT/k8s with the same objects under WEAVE_OUT/k8s, field by
        field: per site the agents' Namespace, their default-deny NetworkPolicy and the
        ClusterSPIFFEIDs and ClusterFederatedTrustDomains of `mesh/registration.yaml`, and per agent
        every object of weave's `agents/<agent>.yaml` (ServiceAccount, the ConfigMaps
        `<agent>-config` and `<agent>-opa`, Deployment, Services, PodDisruptionBudget); weave
        writes more, which is left out. The agent config (YAML) and the agent's OPA data (JSON) are
        compared parsed, as data; the `app.kubernetes.io/managed-by` label and the pod annotation
        `agentweave.io/inputs-sha256` are left out of the comparison. That annotation is checked on
        its own instead: on weave's side each Deployment's must be the digest of its inputs, the
        SHA-256 over the OPA policy (`authz.rego` of weave's ConfigMap `opa-policy`), the agent's
        OPA data and its agent config, each as UTF-8 preceded by its length as a little-endian u64,
        the texts taken from weave's own ConfigMaps. The peers leave the annotation out (Jsonnet's
        and KCL's sha256 hash text, not such bytes, and no peer renders the policy), so on the peer's
        side it is only checked where a peer writes one: against the peer's own ConfigMaps and
        weave's policy. Prints one JSON line of counts (the annotations checked on each side among
        them) and exits 1 on any difference.

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
import re
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

# The objects the peers render: every object of an agent's file (`k8s/<site>/agents/<agent>.yaml`;
# the directory's kustomization.yaml is not one), and per site the agents' Namespace, their
# default-deny NetworkPolicy and the SPIRE registration (a ClusterSPIFFEID per agent, a
# ClusterFederatedTrustDomain per federated domain). An object weave adds to these is one the peers
# lack.
AGENT_DIRECTORY = "agents"
# Per site, spire-controller-manager's resources of weave's `mesh/registration.yaml`.
REGISTRATION_KINDS = ("ClusterSPIFFEID", "ClusterFederatedTrustDomain")
KUSTOMIZATION = "kustomization.yaml"
AGENTS_NAMESPACE_COMPONENT = "agents"
DEFAULT_DENY = "default-deny"
MANAGED_BY = "app.kubernetes.io/managed-by"
INPUTS_DIGEST = "agentweave.io/inputs-sha256"
CONFIG_KEY = "config.yaml"
OPA_DATA_KEY = "agent-data.json"
# The mesh-wide ConfigMap (weave's `k8s/_mesh/opa.yaml`) holding the policy every agent's OPA loads.
OPA_POLICY_CONFIGMAP = "opa-policy"
OPA_POLICY_KEY = "authz.rego"


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
    # Ansible's filter of that name, which the template uses.
    environment.filters["regex_replace"] = lambda text, pattern, replacement: re.sub(pattern, replacement, text)
    site_of = {agent["name"]: name for name, site in topology["sites"].items() for agent in site.get("agents") or []}
    module = environment.get_template("manifests.yaml.j2").make_module({"topology": topology, "site_of": site_of})
    files = {}
    for site_name, site in topology["sites"].items():
        files[f"k8s/{site_name}/mesh/registration.yaml"] = str(module.registration(site_name, site))
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
    """(path relative to TREE/k8s, object) for every Kubernetes object under TREE/k8s."""
    import yaml

    root = Path(tree, "k8s")
    if not root.is_dir():
        raise SystemExit(f"{root}: no such directory")
    for path in sorted(root.rglob("*.yaml")):
        with open(path, encoding="utf-8") as stream:
            for document in yaml.load_all(stream, Loader=yaml_loader()):
                if isinstance(document, dict) and "kind" in document:
                    yield path.relative_to(root), document


def in_subset(relative, document, agents_namespaces):
    """Whether weave's object is one of those the peers render."""
    kind = document.get("kind")
    metadata = document.get("metadata") or {}
    if len(relative.parts) == 3 and relative.parts[1] == AGENT_DIRECTORY:
        return relative.name != KUSTOMIZATION
    if kind in REGISTRATION_KINDS:
        return True
    if kind == "Namespace":
        return is_agents_namespace(document)
    if kind == "NetworkPolicy":
        return metadata.get("name") == DEFAULT_DENY and metadata.get("namespace") in agents_namespaces
    return False


def is_agents_namespace(document):
    labels = (document.get("metadata") or {}).get("labels") or {}
    return document.get("kind") == "Namespace" and labels.get("app.kubernetes.io/component") == AGENTS_NAMESPACE_COMPONENT


def inputs_digest(*parts):
    """weave's digest of a workload's inputs: SHA-256 over each part's UTF-8, each preceded by its
    length as a little-endian u64 (src/digest.rs `sha256_hex_of_parts`)."""
    hasher = hashlib.sha256()
    for part in parts:
        data = part.encode("utf-8")
        hasher.update(len(data).to_bytes(8, "little"))
        hasher.update(data)
    return hasher.hexdigest()


def policy_text(found):
    """The OPA policy of weave's ConfigMap `opa-policy` among FOUND (None when there is none)."""
    for _, document in found:
        metadata = document.get("metadata") or {}
        if document["kind"] == "ConfigMap" and metadata.get("name") == OPA_POLICY_CONFIGMAP:
            return (document.get("data") or {}).get(OPA_POLICY_KEY)
    return None


def keyed(found, subset_only):
    """(kind, site, namespace, name) → object, of every object of FOUND (`documents`) or of those of
    weave's that the peers render."""
    agents_namespaces = {
        (document.get("metadata") or {}).get("name") for _, document in found if is_agents_namespace(document)
    }
    objects = {}
    for relative, document in found:
        if subset_only and not in_subset(relative, document, agents_namespaces):
            continue
        metadata = document.get("metadata") or {}
        site = (metadata.get("labels") or {}).get("agentweave.io/site")
        key = (document["kind"], site, metadata.get("namespace"), metadata.get("name"))
        objects[key] = document
    return objects


def digest_errors(objects, policy, required):
    """(annotations checked, errors): the Deployments whose inputs-digest annotation is not the digest
    of the OPA policy and of their own ConfigMaps' OPA data and agent config; one without the
    annotation is an error only when REQUIRED."""
    checked = 0
    errors = []
    for (kind, site, namespace, name), document in objects.items():
        if kind != "Deployment":
            continue
        template = document.get("spec", {}).get("template", {}).get("metadata", {})
        annotation = (template.get("annotations") or {}).get(INPUTS_DIGEST)
        if annotation is None and not required:
            continue
        checked += 1
        config = ((objects.get(("ConfigMap", site, namespace, f"{name}-config")) or {}).get("data") or {}).get(CONFIG_KEY)
        opa_data = ((objects.get(("ConfigMap", site, namespace, f"{name}-opa")) or {}).get("data") or {}).get(OPA_DATA_KEY)
        if None in (policy, config, opa_data) or annotation != inputs_digest(policy, opa_data, config):
            errors.append(f"{site}/{name}: {INPUTS_DIGEST} is not the digest of the policy, its OPA data and its config")
    return checked, errors


def comparable(objects):
    """OBJECTS made comparable in place: the agent config and OPA data parsed (their text differs in
    key order, quoting and layout between tools), the managed-by label and the inputs digest gone."""
    import yaml

    for document in objects.values():
        data = document.get("data") if document["kind"] == "ConfigMap" else None
        if isinstance(data, dict) and CONFIG_KEY in data:
            data[CONFIG_KEY] = yaml.load(data[CONFIG_KEY], Loader=yaml_loader())
        if isinstance(data, dict) and OPA_DATA_KEY in data:
            data[OPA_DATA_KEY] = json.loads(data[OPA_DATA_KEY])
        for metadata in (document.get("metadata"), document.get("spec", {}).get("template", {}).get("metadata")):
            if isinstance(metadata, dict):
                (metadata.get("labels") or {}).pop(MANAGED_BY, None)
                (metadata.get("annotations") or {}).pop(INPUTS_DIGEST, None)
    return objects


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
    weave_documents = list(documents(weave_out))
    policy = policy_text(weave_documents)
    weave_objects = keyed(weave_documents, subset_only=True)
    peer_objects = keyed(list(documents(peer_out)), subset_only=False)
    problems = [] if policy is not None else [f"weave: no ConfigMap {OPA_POLICY_CONFIGMAP} with {OPA_POLICY_KEY}"]
    weave_digests, weave_digest_errors = digest_errors(weave_objects, policy, required=True)
    peer_digests, peer_digest_errors = digest_errors(peer_objects, policy, required=False)
    problems += [f"weave: {error}" for error in weave_digest_errors]
    problems += [f"peer: {error}" for error in peer_digest_errors]
    comparable(weave_objects)
    comparable(peer_objects)
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
                # Deployments whose inputs-sha256 annotation was checked (the peers write none).
                "inputs_digests_checked": {"weave": weave_digests, "peer": peer_digests},
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
