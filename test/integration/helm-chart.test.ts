/**
 * The Helm chart (helm/wsgate), rendered by a real Go text/template engine with sprig and Helm's
 * own functions (test/helm/render, built here with Debian's golang-go and its sprig and yaml
 * packages): for the default values and several value sets, every manifest is checked against
 * the Kubernetes schemas (kubernetes-models), the values against values.schema.json as Helm
 * checks them, and the configuration the chart renders is loaded by wsgate's own loader. Skipped
 * with the reason when Go or the libraries are missing.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  PrometheusRule,
  ServiceMonitor,
} from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1';
import { Ajv } from 'ajv';
import { Deployment } from 'kubernetes-models/apps/v1';
import { HorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1';
import { ConfigMap, Pod, Service } from 'kubernetes-models/v1';
import { parseAllDocuments, parse as parseYaml, stringify } from 'yaml';
import { parseConfigText } from '../../src/config/load.ts';

const ROOT = resolve(import.meta.dirname, '../..');
const CHART = join(ROOT, 'helm/wsgate');
const GOPATH_SYSTEM = '/usr/share/gocode';
const LIBRARIES = ['github.com/Masterminds/sprig', 'gopkg.in/yaml.v3'];

function missing(): string | false {
  if (spawnSync('go', ['version']).error) return 'Go is not installed (apt-get install golang-go)';
  const absent = LIBRARIES.filter((library) => !existsSync(join(GOPATH_SYSTEM, 'src', library)));
  if (absent.length > 0) {
    return `Go libraries missing: ${absent.join(', ')} (apt-get install golang-github-masterminds-sprig-dev golang-gopkg-yaml.v3-dev)`;
  }
  return false;
}

type Manifest = { apiVersion: string; kind: string; metadata: { name: string } } & Record<string, unknown>;

interface Validating {
  validate(): void;
}
type Model = new (data: never) => Validating;

const MODELS: Record<string, Model> = {
  'v1/ConfigMap': ConfigMap,
  'v1/Service': Service,
  'apps/v1/Deployment': Deployment,
  'policy/v1/PodDisruptionBudget': PodDisruptionBudget,
  'autoscaling/v2/HorizontalPodAutoscaler': HorizontalPodAutoscaler,
  'monitoring.coreos.com/v1/ServiceMonitor': ServiceMonitor,
  'monitoring.coreos.com/v1/PrometheusRule': PrometheusRule,
};

const skip = missing();
const work = mkdtempSync(join(tmpdir(), 'wsgate-helm-'));
const renderer = join(work, 'render');
const schema = JSON.parse(readFileSync(join(CHART, 'values.schema.json'), 'utf8')) as object;
const checkValues = new Ajv({ allErrors: true, strict: false }).compile(schema);
const defaults = parseYaml(readFileSync(join(CHART, 'values.yaml'), 'utf8')) as Record<string, unknown>;

/** Helm's merge of values: maps key by key, anything else replaced. */
function merged(base: Record<string, unknown>, over: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [key, value] of Object.entries(over)) {
    const current = out[key];
    const isMap = (entry: unknown): entry is Record<string, unknown> =>
      typeof entry === 'object' && entry !== null && !Array.isArray(entry);
    out[key] = isMap(current) && isMap(value) ? merged(current, value) : value;
  }
  return out;
}

let renders = 0;
/** Renders the chart with `values` over its defaults: the manifests, or the renderer's error. */
function render(values: Record<string, unknown> = {}): { manifests: Manifest[]; error: string } {
  const file = join(work, `values-${++renders}.yaml`);
  writeFileSync(file, stringify(values));
  const result = spawnSync(renderer, [CHART, file], { encoding: 'utf8' });
  if (result.status !== 0) return { manifests: [], error: result.stderr.trim() };
  const manifests = parseAllDocuments(result.stdout)
    .map((document) => document.toJS() as Manifest | null)
    .filter((manifest): manifest is Manifest => manifest !== null);
  return { manifests, error: '' };
}

/** Renders `values` that must be valid, and checks every manifest against the Kubernetes schemas. */
function renderValid(values: Record<string, unknown> = {}): Manifest[] {
  const all = merged(defaults, values);
  assert.ok(checkValues(all), `values.schema.json accepts the values: ${JSON.stringify(checkValues.errors)}`);
  const { manifests, error } = render(values);
  assert.equal(error, '', 'the chart renders');
  for (const manifest of manifests) {
    const model = MODELS[`${manifest.apiVersion}/${manifest.kind}`];
    assert.ok(model, `a schema for ${manifest.apiVersion} ${manifest.kind}`);
    assert.doesNotThrow(
      () => new model(manifest as never).validate(),
      `${manifest.kind} ${manifest.metadata.name} is valid`,
    );
  }
  return manifests;
}

function find(manifests: Manifest[], kind: string, name = 'wsgate'): Manifest {
  const found = manifests.find((manifest) => manifest.kind === kind && manifest.metadata.name === name);
  assert.ok(found, `${kind} ${name} rendered`);
  return found;
}

interface ContainerSpec {
  name: string;
  args: string[];
  ports: { name: string; containerPort: number }[];
  readinessProbe: { httpGet: { path: string; port: string } };
  livenessProbe: { httpGet: { path: string; port: string } };
  lifecycle: { preStop: { exec: { command: string[] } } };
  securityContext: {
    readOnlyRootFilesystem: boolean;
    runAsNonRoot: boolean;
    allowPrivilegeEscalation: boolean;
  };
  volumeMounts: { name: string; mountPath: string }[];
}
interface PodSpec {
  terminationGracePeriodSeconds: number;
  containers: ContainerSpec[];
  volumes: { name: string; configMap?: { name: string }; secret?: { secretName: string } }[];
}
interface DeploymentShape {
  spec: { replicas?: number; template: { metadata: { annotations: Record<string, string> }; spec: PodSpec } };
}

/** The wsgate configuration in the rendered ConfigMap, loaded as wsgate loads it. */
function gatewayConfig(manifests: Manifest[], name = 'wsgate') {
  const data = (find(manifests, 'ConfigMap', name) as unknown as { data: Record<string, string> }).data;
  const text = data['config.yaml'];
  assert.ok(text, 'config.yaml in the ConfigMap');
  // The certificate files are the mounted Secret's in the pod; here, the test fixtures stand in.
  const local = text
    .replaceAll('/etc/wsgate/tls/tls.crt', join(ROOT, 'test/fixtures/tls/server.pem'))
    .replaceAll('/etc/wsgate/tls/tls.key', join(ROOT, 'test/fixtures/tls/server-key.pem'));
  return parseConfigText(local, { file: 'config.yaml', baseDir: ROOT, env: {} });
}

describe('the Helm chart', { skip }, () => {
  before(() => {
    mkdirSync(join(work, 'gopath/src'), { recursive: true });
    symlinkSync(join(ROOT, 'test/helm/render'), join(work, 'gopath/src/render'));
    const built = spawnSync('go', ['build', '-o', renderer, '.'], {
      cwd: join(work, 'gopath/src/render'),
      encoding: 'utf8',
      env: {
        ...process.env,
        GOPATH: `${join(work, 'gopath')}:${GOPATH_SYSTEM}`,
        GO111MODULE: 'off',
        GOCACHE: join(work, 'gocache'),
        GOFLAGS: '',
      },
    });
    assert.equal(built.status, 0, `the renderer builds: ${built.stderr}`);
  });
  after(() => rmSync(work, { recursive: true, force: true }));

  it('default values: ingress mode, every manifest valid, probes, drain, security and a loadable configuration', () => {
    const manifests = renderValid();
    assert.deepEqual(manifests.map((manifest) => manifest.kind).sort(), [
      'ConfigMap',
      'Deployment',
      'PodDisruptionBudget',
      'Service',
      'Service',
    ]);
    const deployment = find(manifests, 'Deployment') as unknown as DeploymentShape;
    const pod = deployment.spec.template.spec;
    const [container] = pod.containers;
    assert.ok(container);
    assert.deepEqual(container.args, ['--config', '/etc/wsgate/config/config.yaml']);
    assert.deepEqual(container.readinessProbe.httpGet, { path: '/readyz', port: 'admin' });
    assert.deepEqual(container.livenessProbe.httpGet, { path: '/healthz', port: 'admin' });
    assert.deepEqual(container.lifecycle.preStop.exec.command, ['sleep', '5']);
    assert.ok(pod.terminationGracePeriodSeconds > 5 + 25, 'the grace period outlasts preStop and the drain');
    assert.equal(container.securityContext.readOnlyRootFilesystem, true);
    assert.equal(container.securityContext.runAsNonRoot, true);
    assert.equal(container.securityContext.allowPrivilegeEscalation, false);
    assert.match(deployment.spec.template.metadata.annotations['checksum/restart'] ?? '', /^[0-9a-f]{64}$/);
    const service = find(manifests, 'Service') as unknown as {
      spec: { type: string; externalTrafficPolicy: string; ports: { port: number; targetPort: string }[] };
    };
    assert.equal(service.spec.type, 'LoadBalancer');
    assert.equal(service.spec.externalTrafficPolicy, 'Local');
    assert.deepEqual(
      service.spec.ports.map(({ port, targetPort }) => ({ port, targetPort })),
      [{ port: 80, targetPort: 'http' }],
    );
    assert.ok(!JSON.stringify(service).includes('8410'), 'the admin port is not on the public Service');
    const config = gatewayConfig(manifests);
    assert.equal(config.admin.address, '0.0.0.0');
    assert.equal(config.admin.port, 8410);
    assert.equal(config.reload.watch, true, 'ConfigMap updates are reloaded in place');
    assert.deepEqual(Object.keys(config.listeners), ['http']);
    assert.equal(config.listeners.http?.address, '0.0.0.0');
    assert.equal(config.shutdown.drainTimeout, 25_000);
  });

  it('TLS from a Secret, PROXY protocol, NodePort, an HPA and a ServiceMonitor', () => {
    const manifests = renderValid({
      listeners: {
        http: { port: 8080, proxyProtocol: 'v2' },
        https: { port: 8443, tls: true, proxyProtocol: 'v2' },
      },
      tls: { secretName: 'wsgate-cert' },
      service: { type: 'NodePort', ports: { http: 80, https: 443 } },
      autoscaling: { enabled: true, minReplicas: 3, maxReplicas: 12 },
      serviceMonitor: { enabled: true, labels: { release: 'prometheus' } },
    });
    const deployment = find(manifests, 'Deployment') as unknown as DeploymentShape;
    assert.equal(deployment.spec.replicas, undefined, 'the HPA owns the replica count');
    const pod = deployment.spec.template.spec;
    assert.deepEqual(pod.volumes.find((volume) => volume.name === 'wsgate-tls')?.secret, {
      secretName: 'wsgate-cert',
    });
    assert.ok(pod.containers[0]?.volumeMounts.some((mount) => mount.mountPath === '/etc/wsgate/tls'));
    assert.deepEqual(
      pod.containers[0]?.ports.map((port) => port.containerPort),
      [8080, 8443, 8410],
    );
    const config = gatewayConfig(manifests);
    assert.equal(config.listeners.https?.tls?.cert.path, join(ROOT, 'test/fixtures/tls/server.pem'));
    assert.equal(config.listeners.http?.proxyProtocol, 'v2');
    const hpa = find(manifests, 'HorizontalPodAutoscaler') as unknown as { spec: { minReplicas: number } };
    assert.equal(hpa.spec.minReplicas, 3);
    const monitor = find(manifests, 'ServiceMonitor') as unknown as {
      metadata: { labels: Record<string, string> };
      spec: {
        endpoints: { port: string; path: string }[];
        selector: { matchLabels: Record<string, string> };
      };
    };
    assert.deepEqual(
      monitor.spec.endpoints.map(({ port, path }) => ({ port, path })),
      [{ port: 'admin', path: '/metrics' }],
    );
    assert.equal(monitor.metadata.labels.release, 'prometheus');
    const admin = find(manifests, 'Service', 'wsgate-admin') as unknown as {
      metadata: { labels: Record<string, string> };
    };
    for (const [label, value] of Object.entries(monitor.spec.selector.matchLabels)) {
      assert.equal(
        admin.metadata.labels[label],
        value,
        `the ServiceMonitor selects the admin Service (${label})`,
      );
    }
  });

  it('sidecar mode: the configuration and the container, volume and port to add to an application pod', () => {
    const manifests = renderValid({ mode: 'sidecar', sidecar: { listenPort: 8081, appPort: 3000 } });
    assert.deepEqual(
      manifests.map((manifest) => manifest.kind),
      ['ConfigMap', 'ConfigMap'],
    );
    const config = gatewayConfig(manifests);
    assert.deepEqual(
      config.pools.app?.backends.map((backend) => backend.url),
      ['http://127.0.0.1:3000'],
    );
    assert.equal(config.listeners.http?.port, 8081);
    const patch = parseYaml(
      (find(manifests, 'ConfigMap', 'wsgate-sidecar') as unknown as { data: { 'patch.yaml': string } }).data[
        'patch.yaml'
      ],
    ) as { spec: { template: { spec: PodSpec } } };
    const { containers, volumes } = patch.spec.template.spec;
    // What the patch adds, in a pod with the application's own container.
    const pod = new Pod({
      metadata: { name: 'app' },
      spec: { containers: [{ name: 'app', image: 'app:1' }, ...containers], volumes },
    } as never);
    assert.doesNotThrow(() => pod.validate(), 'the patched pod is valid');
    assert.deepEqual(
      containers[0]?.ports.map((port) => port.containerPort),
      [8081, 8410],
    );
    assert.deepEqual(
      volumes.map((volume) => volume.configMap?.name),
      ['wsgate'],
    );
  });

  it('a fleet-wide limit store: its password from a Secret, its CA mounted, the configuration loadable', () => {
    const store = {
      redis: {
        url: 'rediss://redis.wsgate.svc:6380/0',
        // biome-ignore lint/suspicious/noTemplateCurlyInString: the configuration's reference syntax.
        password: '${REDIS_PASSWORD}',
        tls: { ca: '/etc/wsgate/secrets/redis/ca.crt' },
      },
    };
    const manifests = renderValid({
      config: { admission: { perSubject: { maxConnections: 10 }, store } },
      env: [{ name: 'REDIS_PASSWORD', valueFrom: { secretKeyRef: { name: 'redis', key: 'password' } } }],
      secretMounts: [{ name: 'redis', secretName: 'redis-tls' }],
    });
    const pod = (find(manifests, 'Deployment') as unknown as DeploymentShape).spec.template.spec;
    const container = pod.containers[0] as ContainerSpec & { env: { name: string }[] };
    assert.deepEqual(
      container.env.map((variable) => variable.name),
      ['REDIS_PASSWORD'],
    );
    const mount = container.volumeMounts.find((entry) => entry.mountPath === '/etc/wsgate/secrets/redis');
    assert.ok(mount, 'the Secret is mounted');
    assert.deepEqual(pod.volumes.find((volume) => volume.name === mount.name)?.secret, {
      secretName: 'redis-tls',
    });
    const data = (find(manifests, 'ConfigMap') as unknown as { data: Record<string, string> }).data;
    const text = (data['config.yaml'] ?? '').replaceAll(
      '/etc/wsgate/secrets/redis/ca.crt',
      join(ROOT, 'test/fixtures/tls/ca.pem'),
    );
    const config = parseConfigText(text, {
      file: 'config.yaml',
      baseDir: ROOT,
      env: { REDIS_PASSWORD: 'from-the-secret' },
    });
    assert.ok(
      config.admission.store !== 'memory' && config.admission.store.redis.password === 'from-the-secret',
    );
  });

  it('a ConfigMap change reloads in place; only settings a reload cannot change roll the pods', () => {
    const checksum = (values: Record<string, unknown>): string =>
      (find(renderValid(values), 'Deployment') as unknown as DeploymentShape).spec.template.metadata
        .annotations['checksum/restart'] ?? '';
    const base = checksum({});
    assert.equal(
      checksum({ config: { routes: { app: { path: '/chat', pool: 'app' } } } }),
      base,
      'a route change leaves the pods as they are',
    );
    assert.notEqual(checksum({ config: { workers: 2 } }), base, 'a change of workers rolls them');
    assert.notEqual(
      checksum({ config: { admission: { store: { redis: { url: 'redis://redis:6379' } } } } }),
      base,
      'a change of the limit store rolls them',
    );
    assert.notEqual(
      checksum({ config: { log: { format: 'pretty' } } }),
      base,
      'a change of log.format rolls them',
    );
  });

  it('the Grafana dashboard and the Prometheus rules: valid manifests, every query on documented metrics, promtool agrees', (t) => {
    const manifests = renderValid({ grafanaDashboard: { enabled: true }, prometheusRule: { enabled: true } });
    const board = find(manifests, 'ConfigMap', 'wsgate-dashboard') as unknown as {
      metadata: { labels: Record<string, string> };
      data: { 'wsgate.json': string };
    };
    assert.equal(board.metadata.labels.grafana_dashboard, '1', 'found by Grafana’s sidecar');
    const dashboard = JSON.parse(board.data['wsgate.json']) as {
      panels: { title: string; targets: { expr: string }[] }[];
    };
    assert.deepEqual(dashboard, JSON.parse(readFileSync(join(CHART, 'dashboards/wsgate.json'), 'utf8')));
    const titles = dashboard.panels.map((panel) => panel.title).join(' | ');
    for (const topic of [
      'WebSockets',
      'Upgrades',
      'Messages',
      'Bytes',
      'Closes',
      'Limit',
      'refusals',
      'Backend',
      'ping RTT',
      'reloads',
    ]) {
      assert.match(titles, new RegExp(topic), `a panel on ${topic}`);
    }
    const rules = find(manifests, 'PrometheusRule') as unknown as {
      spec: { groups: { rules: { expr: string; alert?: string }[] }[] };
    };
    const ruleExprs = rules.spec.groups.flatMap((group) => group.rules.map((rule) => rule.expr));
    const alerts = rules.spec.groups.flatMap((group) => group.rules.flatMap((rule) => rule.alert ?? []));
    for (const alert of ['WsgateBackendDown', 'WsgateErrorCloseRate', 'WsgateAuthRefusalSpike'])
      assert.ok(alerts.includes(alert), alert);
    const documented = new Set(
      [
        ...readFileSync(join(ROOT, 'docs/metrics.md'), 'utf8').matchAll(
          /^\| `(wsgate_[a-z_]+)` \| (counter|gauge|histogram)/gm,
        ),
      ].flatMap(([, name, type]) =>
        type === 'histogram' ? [`${name}_bucket`, `${name}_sum`, `${name}_count`] : [name ?? ''],
      ),
    );
    const queries = [
      ...dashboard.panels.flatMap((panel) => panel.targets.map((target) => target.expr)),
      ...ruleExprs,
    ];
    for (const query of queries) {
      const names = query.match(/\bwsgate_[a-z_]+/g) ?? [];
      assert.ok(names.length > 0, `${query} reads a wsgate metric`);
      for (const name of names)
        assert.ok(documented.has(name), `${name} (in ${query}) is in docs/metrics.md`);
    }
    if (spawnSync('promtool', ['--version']).error) {
      t.diagnostic('promtool is not installed: `promtool check rules` is skipped');
      return;
    }
    const checked = spawnSync('promtool', ['check', 'rules', join(CHART, 'rules/wsgate-rules.yaml')], {
      encoding: 'utf8',
    });
    assert.equal(checked.status, 0, checked.stdout + checked.stderr);
  });

  it('refuses, with a reason, what cannot work', () => {
    const tlsWithoutSecret = render({ listeners: { https: { port: 8443, tls: true } } });
    assert.match(tlsWithoutSecret.error, /listeners\.https has tls: true: set tls\.secretName/);
    const shortGrace = render({ terminationGracePeriodSeconds: 20 });
    assert.match(
      shortGrace.error,
      /terminationGracePeriodSeconds \(20\) must be more than preStopSeconds \(5\) plus config\.shutdown\.drainTimeout \(25s\)/,
    );
    for (const values of [
      { mode: 'daemon' },
      { listeners: { 'a-name-longer-than-15': { port: 8080 } } },
      { listeners: { http: { port: 70_000 } } },
      { service: { type: 'ExternalName' } },
      { config: { shutdown: { drainTimeout: '1h30m' } } },
    ]) {
      assert.equal(
        checkValues(merged(defaults, values)),
        false,
        `values.schema.json refuses ${JSON.stringify(values)}`,
      );
    }
  });
});
