// The Kubernetes manifests that bench/run.sh compares weave with, written the way a team would write
// them in Jsonnet. Per site that has agents: the agents' Namespace and the default-deny
// NetworkPolicy. Per agent, the objects of weave's `agents/<agent>.yaml`: a ServiceAccount, a
// ConfigMap with the agent config, a ConfigMap `<agent>-opa` with the agent's OPA data (the facts
// about calls into it), a Deployment (the agent and its OPA sidecar), a Service, a headless metrics
// Service (when metrics are on), the Tailscale operator's ingress Service `<agent>-tailnet` (when
// an agent of another site calls it) and, with more than one replica, a PodDisruptionBudget.
// Objects and fields are those of `weave build --only k8s` for these kinds, except the
// `app.kubernetes.io/managed-by` label and the pod annotation `agentweave.io/inputs-sha256`;
// `run_peers.py compare` checks that.
//
// The annotation is left out: weave's is the SHA-256 of the OPA policy, the OPA data and the agent
// config, each preceded by its length as 8 little-endian bytes, and std.sha256 hashes the UTF-8 of a
// string, which cannot hold such bytes (nor has this program the policy text, which lives in the
// mesh-wide ConfigMap `opa-policy`). `run_peers.py compare` checks weave's annotation instead.
//
// It covers what gen-topology.py writes (the `sites:` form, Tailscale with a named tailnet, no
// fallbacks, no spot or edge scheduling, no minAvailable); weave also checks the topology and
// renders SPIRE, the mesh-wide OPA policy and data, the tailnet's egress Services and every allow
// NetworkPolicy, which this program does not.
//
// Run with go-jsonnet (PyPI `gojsonnet`: std.parseYaml is not in the C++ build) or jrsonnet.
// Input: the topology file's text (top-level argument `topologyYaml`). Output: an object from file
// path (k8s/<site>/...) to that file's YAML stream, as `jsonnet -m` would write them.
function(topologyYaml)
  local topology = std.parseYaml(topologyYaml);
  local mesh = topology.mesh;
  local namespace = mesh.namespace;
  local siteNames = std.objectFields(topology.sites);
  local tailscale = topology.networking.tailscale;
  local tailscaleOn = topology.networking.type == 'tailscale';
  // With a named tailnet the Tailscale operator's proxies carry calls between sites.
  local tailnetOn = tailscaleOn && std.get(tailscale, 'tailnet') != null;
  local observability = topology.observability;
  local tracingOn = observability.tracing.enabled;
  // Spans go to the site's OpenTelemetry Collector, which runs when tracing has a backend.
  local collectorOn = tracingOn && std.objectHas(observability.tracing, 'endpoint');
  local collectorEndpoint = 'http://otel-collector.monitoring.svc:4317';
  // Each site's Prometheus (the central one: `metrics.central`, else the first site) scrapes the
  // agents through a headless Service.
  local metricsService = observability.metrics.enabled
                         && (!std.objectHas(observability.metrics, 'central')
                             || std.objectHas(topology.sites, observability.metrics.central));
  local authorization = std.get(topology, 'authorization', {});
  local publicActions = std.set(std.get(authorization, 'publicActions', []));
  local federation = std.get(topology, 'federation', {});
  local federationOn = std.get(federation, 'enabled', false);

  // OPA's API port (on localhost) and diagnostic port: 8181 and 8282, or the next ports the agent's
  // own do not take.
  local freePort(port, taken) =
    if std.member(taken, port) then freePort(if port == 65535 then 1024 else port + 1, taken) else port;
  local opaApiPort = freePort(8181, [mesh.port, mesh.metricsPort]);
  local opaDiagnosticPort = freePort(8282, [mesh.port, mesh.metricsPort, opaApiPort]);

  local spiffeId(trustDomain, name) =
    std.strReplace(std.strReplace(topology.identity.idTemplate, '{trustDomain}', trustDomain), '{name}', name);

  // The site of every agent by name: an agent's callees may live in any site.
  local siteOf = {
    [agent.name]: siteName
    for siteName in siteNames
    for agent in topology.sites[siteName].agents
  };

  local clusterOf(siteName) = mesh.name + '-' + siteName;
  local regionOf(siteName) = std.get(topology.sites[siteName], 'region', siteName);

  // The list without repeats, in the order of first appearance.
  local orderedUnique(list) = std.foldl(function(kept, item) if std.member(kept, item) then kept else kept + [item], list, []);

  // The trust domains federated with each trust domain: every other one (`pairs: all`) or those the
  // pairs list with it.
  local trustDomains = std.set([topology.sites[siteName].trustDomain for siteName in siteNames]);
  local pairs = std.get(federation, 'pairs', 'all');
  local federated(left, right) =
    federationOn && (!std.isArray(pairs) || std.member(pairs, [left, right]) || std.member(pairs, [right, left]));
  local federationPeers = {
    [domain]: [other for other in trustDomains if other != domain && federated(domain, other)]
    for domain in trustDomains
  };

  // Every declared call edge, the calls of one caller to one callee merged (their actions in
  // written order), grouped by callee: an agent's OPA data holds the edges into it. Every agent has
  // an entry, so that lookups index the object (go-jsonnet's std.get and std.objectHas list the
  // fields of an object: with one lookup per agent, quadratic).
  local edges = [
    {
      caller: agent.name,
      callerSite: siteName,
      callee: callee,
      actions: orderedUnique(std.flattenArrays([call.actions for call in std.get(agent, 'calls', []) if call.agent == callee])),
    }
    for siteName in siteNames
    for agent in topology.sites[siteName].agents
    for callee in std.set([call.agent for call in std.get(agent, 'calls', [])])
  ];
  local groupBy(items, key) =
    local sorted = std.sort(items, keyF=function(item) item[key]);
    local count = std.length(sorted);
    local starts = [i for i in std.range(0, count - 1) if i == 0 || sorted[i][key] != sorted[i - 1][key]];
    local end(k) = if k + 1 < std.length(starts) then starts[k + 1] else count;
    { [sorted[starts[k]][key]]: sorted[starts[k]:end(k)] for k in std.range(0, std.length(starts) - 1) };
  local edgesInto = { [name]: [] for name in std.objectFields(siteOf) } + groupBy(edges, 'callee');

  local labels(siteName, site, name, component) = {
    'agentweave.io/provider': site.provider,
    'agentweave.io/site': siteName,
    'app.kubernetes.io/component': component,
    'app.kubernetes.io/managed-by': 'jsonnet',
    'app.kubernetes.io/name': name,
    'app.kubernetes.io/part-of': mesh.name,
  };
  local selector(name) = { 'app.kubernetes.io/component': 'agent', 'app.kubernetes.io/name': name };

  // A caller dials every callee at its Service name: the callee's own Service in its site, the
  // Tailscale operator's egress Service in another.
  local serviceAddress(name) = name + '.' + namespace + '.svc.cluster.local:' + mesh.port;
  local advertise(name) =
    if tailnetOn then name + '.' + tailscale.tailnet + '.ts.net:' + mesh.port else serviceAddress(name);
  local tailscaleTags(agent) =
    ['tag:' + mesh.name + '-' + agent.name]
    + std.set(['tag:' + (if std.startsWith(tag, 'tag:') then tag[4:] else tag) for tag in std.get(tailscale, 'tags', [mesh.name])]);

  local restricted = {
    runAsNonRoot: true,
    runAsUser: 10001,
    runAsGroup: 10001,
    allowPrivilegeEscalation: false,
    readOnlyRootFilesystem: true,
    capabilities: { drop: ['ALL'] },
    seccompProfile: { type: 'RuntimeDefault' },
  };
  local probe(path, port, delay, period, failures) = {
    httpGet: { path: path, port: port },
    initialDelaySeconds: delay,
    periodSeconds: period,
    timeoutSeconds: 3,
    failureThreshold: failures,
  };
  local env(name, value) = { name: name, value: value };

  local agentConfig(siteName, site, agent) =
    local trustDomain = site.trustDomain;
    local calls = std.get(agent, 'calls', []);
    local observed = {
      site: siteName,
      provider: site.provider,
      region: regionOf(siteName),
      cluster: clusterOf(siteName),
    };
    {
      identity: {
        provider: 'spiffe',
        spiffe_id: spiffeId(trustDomain, agent.name),
        trust_domain: trustDomain,
        spire_socket: '/run/spire/sockets/agent.sock',
      },
      authorization: {
        engine: 'opa',
        default_policy: 'deny_all',
        policy_path: 'agentweave/authz',
        opa: {
          enabled: true,
          url: 'http://127.0.0.1:' + opaApiPort,
          decision: 'data.agentweave.authz.allow',
        },
      },
      server: {
        host: '0.0.0.0',
        port: mesh.port,
        mtls: { enabled: true, cert_source: 'spire' },
        advertise_address: advertise(agent.name),
        health: { port: mesh.metricsPort, path: '/health' },
      },
      agent_registry: {
        [callee]: {
          spiffe_id: spiffeId(topology.sites[siteOf[callee]].trustDomain, callee),
          address: 'https://' + serviceAddress(callee),
          actions: orderedUnique(std.flattenArrays([call.actions for call in calls if call.agent == callee])),
        }
        for callee in std.set([call.agent for call in calls])
      },
      observability: {
        logging: {
          level: observability.logging.level,
          format: observability.logging.format,
          default_fields: observed,
        },
        metrics: { enabled: observability.metrics.enabled, port: mesh.metricsPort, path: '/metrics', labels: observed },
        tracing: { enabled: collectorOn, service_name: agent.name }
                 + (if collectorOn then { endpoint: collectorEndpoint } else {}),
      },
      metadata: observed { name: agent.name, trust_domain: trustDomain },
    };

  local agentContainer(siteName, site, agent) = {
    name: 'agent',
    image: std.get(agent, 'image', mesh.image),
    imagePullPolicy: 'Always',
    env: [
      env('AGENTWEAVE_CONFIG', '/etc/agentweave/config/config.yaml'),
      env('SPIFFE_ENDPOINT_SOCKET', 'unix:///run/spire/sockets/agent.sock'),
    ] + (if collectorOn then [
           env('OTEL_EXPORTER_OTLP_ENDPOINT', collectorEndpoint),
           env('OTEL_EXPORTER_OTLP_PROTOCOL', 'grpc'),
         ] else [])
    + (if tracingOn then [
         env('OTEL_SERVICE_NAME', agent.name),
         env('OTEL_RESOURCE_ATTRIBUTES',
             'cloud.provider=' + site.provider + ',cloud.region=' + regionOf(siteName) + ',k8s.cluster.name='
             + clusterOf(siteName) + ',agentweave.site=' + siteName),
       ] else []),
    ports: [
      { name: 'mtls', containerPort: mesh.port, protocol: 'TCP' },
      { name: 'metrics', containerPort: mesh.metricsPort, protocol: 'TCP' },
    ],
    resources: {
      requests: { cpu: '100m', memory: '128Mi' },
      limits: { cpu: '1', memory: '512Mi' },
    },
    livenessProbe: probe('/health', 'metrics', 10, 10, 3),
    readinessProbe: probe('/health', 'metrics', 5, 5, 3),
    securityContext: restricted,
    volumeMounts: [
      { name: 'config', mountPath: '/etc/agentweave/config', readOnly: true },
      { name: 'spire-agent-socket', mountPath: '/run/spire/sockets', readOnly: true },
      { name: 'tmp', mountPath: '/tmp' },
    ],
  };

  // The agent's OPA: the mesh's policy and the agent's own data, answering on localhost only; the
  // diagnostic listener serves /health to the kubelet.
  local opaContainer = {
    name: 'opa',
    image: 'openpolicyagent/opa:1.16.0-static',
    imagePullPolicy: 'Always',
    args: [
      'run',
      '--server',
      '--addr=127.0.0.1:' + opaApiPort,
      '--diagnostic-addr=0.0.0.0:' + opaDiagnosticPort,
      '--disable-telemetry',
      '--log-level=error',
      '/etc/opa/authz.rego',
      '/etc/opa/agent-data.json',
    ],
    ports: [{ name: 'opa-diag', containerPort: opaDiagnosticPort, protocol: 'TCP' }],
    resources: {
      requests: { cpu: '50m', memory: '64Mi' },
      limits: { cpu: '500m', memory: '256Mi' },
    },
    livenessProbe: probe('/health', 'opa-diag', 10, 10, 3),
    readinessProbe: probe('/health', 'opa-diag', 2, 5, 3),
    securityContext: restricted,
    volumeMounts: [{ name: 'opa', mountPath: '/etc/opa', readOnly: true }],
  };

  // The data of the agent's OPA, under `agentweave`: the mesh-wide settings, the agent's own SPIFFE
  // ID and trust domain, the domains federated with it, and the declared calls into it.
  local opaData(siteName, site, agent) =
    local id = spiffeId(site.trustDomain, agent.name);
    {
      agentweave: {
        mesh: mesh.name,
        allow_same_trust_domain: std.get(authorization, 'allowSameTrustDomain', false),
        public_actions: publicActions,
        federation: { enabled: federationOn, peers: { [site.trustDomain]: federationPeers[site.trustDomain] } },
        agents: { [id]: site.trustDomain },
        edges: {
          [spiffeId(topology.sites[edge.callerSite].trustDomain, edge.caller)]: { [id]: std.set(edge.actions) }
          for edge in edgesInto[agent.name]
        },
      },
    };

  local agentManifests(siteName, site, agent) =
    local agentLabels = labels(siteName, site, agent.name, 'agent');
    local meta(name) = { name: name, namespace: namespace, labels: agentLabels };
    local configText = std.manifestYamlDoc(agentConfig(siteName, site, agent), quote_keys=false);
    local replicas = std.get(agent, 'replicas', 1);
    // Other sites dial the agent over the tailnet: the operator's ingress proxy, a device named like
    // the agent, forwards to its Service.
    local dialledFromAfar = tailnetOn && std.length([
      edge
      for edge in edgesInto[agent.name]
      if edge.callerSite != siteName
    ]) > 0;
    [
      {
        apiVersion: 'v1',
        kind: 'ServiceAccount',
        metadata: meta(agent.name),
        automountServiceAccountToken: false,
      },
      {
        apiVersion: 'v1',
        kind: 'ConfigMap',
        metadata: meta(agent.name + '-config'),
        data: { 'config.yaml': configText },
      },
      {
        apiVersion: 'v1',
        kind: 'ConfigMap',
        metadata: meta(agent.name + '-opa'),
        data: { 'agent-data.json': std.manifestJsonEx(opaData(siteName, site, agent), '  ') + '\n' },
      },
      {
        apiVersion: 'apps/v1',
        kind: 'Deployment',
        metadata: meta(agent.name),
        spec: {
          replicas: replicas,
          revisionHistoryLimit: 3,
          selector: { matchLabels: selector(agent.name) },
          strategy: { type: 'RollingUpdate', rollingUpdate: { maxSurge: 1, maxUnavailable: 0 } },
          template: {
            metadata: {
              labels: agentLabels,
              annotations: { 'kubectl.kubernetes.io/default-container': 'agent' },
            },
            spec: {
              serviceAccountName: agent.name,
              automountServiceAccountToken: false,
              enableServiceLinks: false,
              securityContext: {
                runAsNonRoot: true,
                runAsUser: 10001,
                runAsGroup: 10001,
                fsGroup: 10001,
                seccompProfile: { type: 'RuntimeDefault' },
              },
              topologySpreadConstraints: [
                {
                  maxSkew: topology.resilience.zoneMaxSkew,
                  topologyKey: 'topology.kubernetes.io/zone',
                  // On-prem nodes often carry no zone label: a hard constraint would leave pods pending.
                  whenUnsatisfiable: if site.provider == 'onprem' then 'ScheduleAnyway' else 'DoNotSchedule',
                  labelSelector: { matchLabels: selector(agent.name) },
                  matchLabelKeys: ['pod-template-hash'],
                },
                {
                  maxSkew: topology.resilience.regionMaxSkew,
                  topologyKey: 'topology.kubernetes.io/region',
                  whenUnsatisfiable: 'ScheduleAnyway',
                  labelSelector: { matchLabels: selector(agent.name) },
                  matchLabelKeys: ['pod-template-hash'],
                },
              ],
              containers: [agentContainer(siteName, site, agent), opaContainer],
              volumes: [
                { name: 'config', configMap: { name: agent.name + '-config' } },
                {
                  name: 'opa',
                  projected: { sources: [
                    { configMap: { name: 'opa-policy', items: [{ key: 'authz.rego', path: 'authz.rego' }] } },
                    { configMap: { name: agent.name + '-opa', items: [{ key: 'agent-data.json', path: 'agent-data.json' }] } },
                  ] },
                },
                { name: 'spire-agent-socket', csi: { driver: 'csi.spiffe.io', readOnly: true } },
                { name: 'tmp', emptyDir: { sizeLimit: '64Mi' } },
              ],
            },
          },
        },
      },
      {
        apiVersion: 'v1',
        kind: 'Service',
        metadata: meta(agent.name),
        spec: {
          type: 'ClusterIP',
          selector: selector(agent.name),
          ports: [
            { name: 'mtls', port: mesh.port, targetPort: 'mtls', protocol: 'TCP' },
            { name: 'metrics', port: mesh.metricsPort, targetPort: 'metrics', protocol: 'TCP' },
          ],
        },
      },
    ] + (if metricsService then [
           {
             apiVersion: 'v1',
             kind: 'Service',
             metadata: meta(agent.name + '-metrics'),
             spec: {
               type: 'ClusterIP',
               clusterIP: 'None',
               selector: selector(agent.name),
               ports: [{ name: 'metrics', port: mesh.metricsPort, targetPort: 'metrics', protocol: 'TCP' }],
             },
           },
         ] else [])
    + (if dialledFromAfar then [
         {
           apiVersion: 'v1',
           kind: 'Service',
           metadata: {
             name: agent.name + '-tailnet',
             namespace: namespace,
             labels: labels(siteName, site, agent.name, 'tailnet-ingress'),
             annotations: {
               'tailscale.com/hostname': agent.name,
               'tailscale.com/tags': std.join(',', tailscaleTags(agent)),
             },
           },
           spec: {
             type: 'LoadBalancer',
             loadBalancerClass: 'tailscale',
             selector: selector(agent.name),
             ports: [{ name: 'mtls', port: mesh.port, targetPort: 'mtls', protocol: 'TCP' }],
           },
         },
       ] else [])
    + (if replicas > 1 then [
         {
           apiVersion: 'policy/v1',
           kind: 'PodDisruptionBudget',
           metadata: meta(agent.name),
           spec: {
             maxUnavailable: 1,
             selector: { matchLabels: selector(agent.name) },
             unhealthyPodEvictionPolicy: 'AlwaysAllow',
           },
         },
       ] else []);

  // The bundle endpoint of each trust domain: that of the first of its sites (by name) listed in
  // `federation.bundleEndpoints`.
  local bundleEndpoints = std.get(federation, 'bundleEndpoints', {});
  local bundleUrl = {
    [domain]: urls[0]
    for domain in trustDomains
    for urls in [[
      bundleEndpoints[siteName]
      for siteName in std.sort(std.objectFields(bundleEndpoints))
      if std.objectHas(topology.sites, siteName) && topology.sites[siteName].trustDomain == domain
    ]]
    if std.length(urls) > 0
  };
  local profile = std.get(federation, 'profile', 'https_web');

  // The trust domains an agent's SVIDs federate with: with public actions every agent may be called
  // from every domain federated with its own; otherwise those of its callers and callees.
  local federatesWith(site, agent) =
    if std.length(publicActions) > 0 then federationPeers[site.trustDomain]
    else std.set([
      domain
      for domain in [topology.sites[edge.callerSite].trustDomain for edge in edgesInto[agent.name]]
                    + [topology.sites[siteOf[call.agent]].trustDomain for call in std.get(agent, 'calls', [])]
      if domain != site.trustDomain && federated(site.trustDomain, domain)
    ]);

  // spire-controller-manager's resources of a site: a ClusterSPIFFEID per agent, a
  // ClusterFederatedTrustDomain per federated domain with a bundle endpoint.
  local registration(siteName, site) =
    [
      {
        apiVersion: 'spire.spiffe.io/v1alpha1',
        kind: 'ClusterSPIFFEID',
        metadata: { name: mesh.name + '-' + agent.name, labels: labels(siteName, site, agent.name, 'registration') },
        spec: {
          spiffeIDTemplate: spiffeId(site.trustDomain, agent.name),
          podSelector: { matchLabels: selector(agent.name) },
          namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': namespace } },
        } + (
          local domains = federatesWith(site, agent);
          if std.length(domains) > 0 then { federatesWith: domains } else {}
        ),
      }
      for agent in site.agents
    ] + [
      local name = std.join('', [if std.member('abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789', c) then c else '-' for c in std.stringChars(domain)]);
      {
        apiVersion: 'spire.spiffe.io/v1alpha1',
        kind: 'ClusterFederatedTrustDomain',
        metadata: { name: name, labels: labels(siteName, site, name, 'federation') },
        spec: {
          trustDomain: domain,
          bundleEndpointURL: bundleUrl[domain],
          bundleEndpointProfile: { type: profile }
                                 + (if profile == 'https_spiffe' then { endpointSPIFFEID: 'spiffe://' + domain + '/spire/server' } else {}),
        },
      }
      for domain in federationPeers[site.trustDomain]
      if std.objectHas(bundleUrl, domain)
    ];

  // One [path, text] pair per file; a single object comprehension builds the result in one pass.
  local siteFiles(siteName) =
    local site = topology.sites[siteName];
    [['k8s/' + siteName + '/mesh/registration.yaml', std.manifestYamlStream(registration(siteName, site), quote_keys=false)]]
    + if std.length(site.agents) == 0 then [] else [
      [
        'k8s/' + siteName + '/spire/namespaces.yaml',
        std.manifestYamlStream([{
          apiVersion: 'v1',
          kind: 'Namespace',
          metadata: {
            name: namespace,
            labels: labels(siteName, site, namespace, 'agents') {
              'pod-security.kubernetes.io/audit': 'restricted',
              'pod-security.kubernetes.io/enforce': 'restricted',
              'pod-security.kubernetes.io/warn': 'restricted',
            },
          },
        }], quote_keys=false),
      ],
      [
        'k8s/' + siteName + '/mesh/networkpolicy.yaml',
        std.manifestYamlStream([{
          apiVersion: 'networking.k8s.io/v1',
          kind: 'NetworkPolicy',
          metadata: {
            name: 'default-deny',
            namespace: namespace,
            labels: labels(siteName, site, 'default-deny', 'network-policy'),
          },
          spec: { podSelector: {}, policyTypes: ['Ingress', 'Egress'] },
        }], quote_keys=false),
      ],
    ] + [
      [
        'k8s/' + siteName + '/agents/' + agent.name + '.yaml',
        std.manifestYamlStream(agentManifests(siteName, site, agent), quote_keys=false),
      ]
      for agent in site.agents
    ];

  { [file[0]]: file[1] for file in std.flattenArrays([siteFiles(siteName) for siteName in siteNames]) }
