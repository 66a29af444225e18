// The Kubernetes manifests that bench/run.sh compares weave with, written the way a team would write
// them in Jsonnet. Per site that has agents: the agents' Namespace and the default-deny
// NetworkPolicy. Per agent: a ServiceAccount, a ConfigMap (the agent config), a Deployment (the
// agent plus the userspace Tailscale sidecar), a Service, a headless metrics Service (when metrics
// are on) and, with more than one replica, a PodDisruptionBudget. Objects and fields are those of
// `weave build --only k8s` for these kinds, except the `app.kubernetes.io/managed-by` label;
// `run_peers.py compare` checks that.
//
// It covers what gen-topology.py writes (the `sites:` form, userspace Tailscale, no fallbacks, no
// spot or edge scheduling, no minAvailable); weave also checks the topology and renders SPIRE, OPA
// and every allow NetworkPolicy, which this program does not.
//
// Run with go-jsonnet (PyPI `gojsonnet`: std.parseYaml and std.sha256 are not in the C++ build).
// Input: the topology file's text (top-level argument `topologyYaml`). Output: an object from file
// path (k8s/<site>/...) to that file's YAML stream, as `jsonnet -m` would write them.
function(topologyYaml)
  local topology = std.parseYaml(topologyYaml);
  local mesh = topology.mesh;
  local namespace = mesh.namespace;
  local siteNames = std.objectFields(topology.sites);
  local tailscale = topology.networking.tailscale;
  local tailscaleOn = topology.networking.type == 'tailscale';
  local tailnet = std.get(tailscale, 'tailnet');
  local observability = topology.observability;
  local tracingOn = observability.tracing.enabled;
  local metricsService = observability.metrics.enabled && std.objectHas(observability.metrics, 'central');

  local spiffeId(trustDomain, name) =
    std.strReplace(std.strReplace(topology.identity.idTemplate, '{trustDomain}', trustDomain), '{name}', name);

  // The site of every agent by name: an agent's callees may live in any site.
  local siteOf = {
    [agent.name]: siteName
    for siteName in siteNames
    for agent in topology.sites[siteName].agents
  };

  local clusterOf(siteName) = mesh.name + '-' + siteName;

  // The list without repeats, in the order of first appearance.
  local orderedUnique(list) = std.foldl(function(kept, item) if std.member(kept, item) then kept else kept + [item], list, []);

  local labels(siteName, site, name, component) = {
    'agentweave.io/provider': site.provider,
    'agentweave.io/site': siteName,
    'app.kubernetes.io/component': component,
    'app.kubernetes.io/managed-by': 'jsonnet',
    'app.kubernetes.io/name': name,
    'app.kubernetes.io/part-of': mesh.name,
  };
  local selector(name) = { 'app.kubernetes.io/component': 'agent', 'app.kubernetes.io/name': name };

  local serviceAddress(name) = name + '.' + namespace + '.svc.cluster.local:' + mesh.port;
  local address(fromSite, callee) =
    if tailscaleOn && tailnet != null && siteOf[callee] != fromSite
    then callee + '.' + tailnet + '.ts.net:' + mesh.port
    else serviceAddress(callee);
  local advertise(name) =
    if tailscaleOn && tailnet != null then name + '.' + tailnet + '.ts.net:' + mesh.port else serviceAddress(name);

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
      region: site.region,
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
          policy_file: '/etc/agentweave/opa/authz.rego',
          data_file: '/etc/agentweave/opa/data.json',
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
          address: 'https://' + address(siteName, callee),
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
        tracing: { enabled: tracingOn, service_name: agent.name },
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
    ] + (if tracingOn then [
           env('OTEL_SERVICE_NAME', agent.name),
           env('OTEL_RESOURCE_ATTRIBUTES',
               'cloud.provider=' + site.provider + ',cloud.region=' + site.region + ',k8s.cluster.name='
               + clusterOf(siteName) + ',agentweave.site=' + siteName),
         ] else [])
         + (if tailscaleOn then [
              env('HTTPS_PROXY', 'http://127.0.0.1:1055'),
              env('ALL_PROXY', 'socks5h://127.0.0.1:1055'),
              env('NO_PROXY', '.svc,.svc.cluster.local,localhost,127.0.0.1'),
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
      { name: 'opa', mountPath: '/etc/agentweave/opa', readOnly: true },
      { name: 'spire-agent-socket', mountPath: '/run/spire/sockets', readOnly: true },
      { name: 'tmp', mountPath: '/tmp' },
    ],
  };

  local tailscaleContainer(agent) = {
    name: 'tailscale',
    image: 'ghcr.io/tailscale/tailscale:v1.86.5',
    imagePullPolicy: 'Always',
    env: [
      env('TS_AUTHKEY', 'file:/etc/tailscale/auth/TS_AUTHKEY'),
      env('TS_HOSTNAME', agent.name),
      env('TS_EXTRA_ARGS', '--advertise-tags=' + std.join(',', ['tag:' + mesh.name + '-' + agent.name]
                                                          + ['tag:' + tag for tag in std.set(tailscale.tags)])),
      env('TS_USERSPACE', 'true'),
      env('TS_KUBE_SECRET', ''),
      env('TS_STATE_DIR', '/var/lib/tailscale'),
      env('TS_AUTH_ONCE', 'true'),
      env('TS_ENABLE_HEALTH_CHECK', 'true'),
      env('TS_SOCKS5_SERVER', '127.0.0.1:1055'),
      env('TS_OUTBOUND_HTTP_PROXY_LISTEN', '127.0.0.1:1055'),
    ],
    ports: [{ name: 'ts-health', containerPort: 9002, protocol: 'TCP' }],
    resources: {
      requests: { cpu: '50m', memory: '64Mi' },
      limits: { cpu: '500m', memory: '256Mi' },
    },
    livenessProbe: probe('/healthz', 'ts-health', 30, 10, 6),
    readinessProbe: probe('/healthz', 'ts-health', 5, 5, 3),
    securityContext: restricted,
    volumeMounts: [
      { name: 'tailscale-auth', mountPath: '/etc/tailscale/auth', readOnly: true },
      { name: 'tailscale-state', mountPath: '/var/lib/tailscale' },
      { name: 'tailscale-tmp', mountPath: '/tmp' },
      {
        name: 'tailscale-kube-api',
        mountPath: '/var/run/secrets/kubernetes.io/serviceaccount',
        readOnly: true,
      },
    ],
  };

  local agentManifests(siteName, site, agent) =
    local agentLabels = labels(siteName, site, agent.name, 'agent');
    local meta(name) = { name: name, namespace: namespace, labels: agentLabels };
    local configText = std.manifestYamlDoc(agentConfig(siteName, site, agent), quote_keys=false);
    local replicas = std.get(agent, 'replicas', 1);
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
              annotations: {
                'agentweave.io/config-sha256': std.sha256(configText),
                'kubectl.kubernetes.io/default-container': 'agent',
              },
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
                  whenUnsatisfiable: 'DoNotSchedule',
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
              containers: [agentContainer(siteName, site, agent)]
                          + (if tailscaleOn then [tailscaleContainer(agent)] else []),
              volumes: [
                { name: 'config', configMap: { name: agent.name + '-config' } },
                {
                  name: 'opa',
                  projected: { sources: [
                    { configMap: { name: 'opa-policy', items: [{ key: 'authz.rego', path: 'authz.rego' }] } },
                    { configMap: { name: 'opa-data', items: [{ key: 'data.json', path: 'data.json' }] } },
                  ] },
                },
                { name: 'spire-agent-socket', csi: { driver: 'csi.spiffe.io', readOnly: true } },
                { name: 'tmp', emptyDir: { sizeLimit: '64Mi' } },
              ] + (if tailscaleOn then [
                     {
                       name: 'tailscale-auth',
                       secret: {
                         secretName: tailscale.authKeySecret,
                         items: [{ key: 'TS_AUTHKEY', path: 'TS_AUTHKEY' }],
                       },
                     },
                     { name: 'tailscale-state', emptyDir: { sizeLimit: '16Mi' } },
                     { name: 'tailscale-tmp', emptyDir: { sizeLimit: '16Mi' } },
                     {
                       name: 'tailscale-kube-api',
                       projected: { sources: [
                         { serviceAccountToken: { expirationSeconds: 3607, path: 'token' } },
                         { configMap: { name: 'kube-root-ca.crt', items: [{ key: 'ca.crt', path: 'ca.crt' }] } },
                         { downwardAPI: { items: [{ path: 'namespace', fieldRef: { fieldPath: 'metadata.namespace' } }] } },
                       ] },
                     },
                   ] else []),
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

  // One [path, text] pair per file; a single object comprehension builds the result in one pass.
  local siteFiles(siteName) =
    local site = topology.sites[siteName];
    if std.length(site.agents) == 0 then [] else [
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
