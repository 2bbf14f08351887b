import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** The three request streams of the benchmark, and one diagnostic variant. */
export type StreamName = 'non-agent' | 'agent-denied' | 'agent-allowed' | 'agent-allowed-fresh-agent' | 'agent-creates-distinct';

/** The streams with targets, run by default. */
export const STREAM_NAMES: readonly StreamName[] = ['non-agent', 'agent-denied', 'agent-allowed'];
/** Every stream, the diagnostic ones included. */
export const ALL_STREAM_NAMES: readonly StreamName[] = [...STREAM_NAMES, 'agent-allowed-fresh-agent', 'agent-creates-distinct'];

export interface StreamDefinition {
  readonly name: StreamName;
  readonly title: string;
  /** A file in test/fixtures/admission. */
  readonly fixture: string;
  /** The verdict the bench policy gives; the bare server always allows. */
  readonly guardAllows: boolean;
  /** Changes the fixture needs beyond fresh identifiers. */
  readonly adjust?: (request: Record<string, unknown>) => void;
  /** Also a fresh agent (service account) per request, named in userInfo and the pod template. */
  readonly freshAgent?: boolean;
  /**
   * Names cycle through this many workloads instead of a fresh name per request: the
   * agent keeps a fixed family, as a real one does, while fresh object UIDs still make
   * every request a new episode (an update's episode key names the workload by UID).
   */
  readonly namePool?: number;
}

/**
 * Replicas 2 (within the allowance of 4), and container args naming the workload: each
 * create is a distinct workload of the agent, not a clone of the previous one (a clone,
 * same service account, image and args, would have a need of 0 and be denied).
 */
function distinctWorkload(request: Record<string, unknown>): void {
  const spec = record(record(request.object, 'request.object').spec, 'request.object.spec');
  spec.replicas = 2;
  const podSpec = record(record(spec.template, 'spec.template').spec, 'spec.template.spec');
  const containers = podSpec.containers;
  if (!Array.isArray(containers)) throw new Error('spec.template.spec.containers is not a list');
  for (const c of containers) record(c, 'a container').args = ['--workload', NAME];
}

export const STREAMS: Readonly<Record<StreamName, StreamDefinition>> = {
  'non-agent': {
    name: 'non-agent',
    title: 'non-agent review (admin creates a Deployment)',
    fixture: 'deployment-create-admin.json',
    guardAllows: true,
  },
  'agent-denied': {
    name: 'agent-denied',
    title: 'agent growth denied (Scale 2 → 10 > allowance)',
    fixture: 'deployment-scale-agent-10.json',
    guardAllows: false,
  },
  'agent-allowed': {
    name: 'agent-allowed',
    title: 'agent growth allowed (updates one of its 16 Deployments, replicas 2 → 3)',
    fixture: 'deployment-replace-agent-10.json',
    guardAllows: true,
    adjust: scaleTwoToThree,
    namePool: 16,
  },
  'agent-allowed-fresh-agent': {
    name: 'agent-allowed-fresh-agent',
    title: 'diagnostic: agent growth allowed, a new agent per request (creates a Deployment, replicas 2)',
    fixture: 'deployment-create-agent.json',
    guardAllows: true,
    freshAgent: true,
    adjust: distinctWorkload,
  },
  'agent-creates-distinct': {
    name: 'agent-creates-distinct',
    title: 'diagnostic: one agent creates a new Deployment per request (its family grows by one each time)',
    fixture: 'deployment-create-agent.json',
    guardAllows: true,
    adjust: distinctWorkload,
  },
};

/** An update from 2 to 3 replicas: within the allowance of 4. */
function scaleTwoToThree(request: Record<string, unknown>): void {
  record(record(request.object, 'request.object').spec, 'request.object.spec').replicas = 3;
  record(record(request.oldObject, 'request.oldObject').spec, 'request.oldObject.spec').replicas = 2;
}

/**
 * An update of a workload `agent-creates-distinct` created (same name, same container
 * args, so the same fingerprint) from 2 to 3 replicas: the family keeps its size.
 */
const MEMBER_UPDATE: StreamDefinition = {
  name: 'agent-allowed',
  title: 'agent growth allowed (updates one of the workloads agent-creates-distinct created, replicas 2 → 3)',
  fixture: 'deployment-replace-agent-10.json',
  guardAllows: true,
  adjust: (request) => {
    scaleTwoToThree(request);
    for (const field of ['object', 'oldObject'] as const) {
      const spec = record(record(request[field], `request.${field}`).spec, `request.${field}.spec`);
      const podSpec = record(record(spec.template, 'spec.template').spec, 'spec.template.spec');
      const containers = podSpec.containers;
      if (!Array.isArray(containers)) throw new Error('spec.template.spec.containers is not a list');
      for (const c of containers) record(c, 'a container').args = ['--workload', NAME];
    }
  },
};

const REQUEST_UID = '\u0000RG-REQUEST-UID\u0000';
const OBJECT_UID = '\u0000RG-OBJECT-UID\u0000';
const NAME = '\u0000RG-NAME\u0000';
const AGENT = '\u0000RG-AGENT\u0000';
const SLOT_PATTERN = /\\u0000RG-(REQUEST-UID|OBJECT-UID|NAME|AGENT)\\u0000/;

type Slot = 'REQUEST-UID' | 'OBJECT-UID' | 'NAME' | 'AGENT';

/** A review body split around the places that must differ between requests. */
interface BodyTemplate {
  readonly parts: readonly string[];
  readonly slots: readonly Slot[];
}

const fixtureDir = fileURLToPath(new URL('../test/fixtures/admission/', import.meta.url));

function record(value: unknown, what: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new Error(`${what} is not an object`);
  return value as Record<string, unknown>;
}

/**
 * The fixture as compact JSON (as the apiserver sends it) with slots for the request
 * uid, the object's metadata.uid and its name (request.name and metadata.name of both
 * objects), so that every request is a new episode for the guard.
 */
function templateOf(stream: StreamDefinition): BodyTemplate {
  const review = record(JSON.parse(readFileSync(fixtureDir + stream.fixture, 'utf8')), stream.fixture);
  const request = record(review.request, 'request');
  stream.adjust?.(request);
  request.uid = REQUEST_UID;
  request.name = NAME;
  for (const field of ['object', 'oldObject'] as const) {
    if (request[field] === null || request[field] === undefined) continue;
    const metadata = record(record(request[field], `request.${field}`).metadata, `request.${field}.metadata`);
    metadata.name = NAME;
    metadata.uid = OBJECT_UID;
  }
  if (stream.freshAgent) {
    const userInfo = record(request.userInfo, 'request.userInfo');
    userInfo.username = `system:serviceaccount:agents:${AGENT}`;
    userInfo.uid = AGENT;
    const spec = record(record(request.object, 'request.object').spec, 'request.object.spec');
    const podSpec = record(record(spec.template, 'spec.template').spec, 'spec.template.spec');
    podSpec.serviceAccountName = AGENT;
    podSpec.serviceAccount = AGENT;
  }
  const pieces = JSON.stringify(review).split(SLOT_PATTERN);
  const parts: string[] = [];
  const slots: Slot[] = [];
  pieces.forEach((piece, i) => {
    if (i % 2 === 0) parts.push(piece);
    else slots.push(piece as Slot);
  });
  return { parts, slots };
}

/**
 * Makes review bodies for a stream, each with a fresh request uid and object uid, and a
 * fresh name unless the stream cycles through a pool of names.
 */
export function bodyFactory(stream: StreamName): () => string {
  const definition = STREAMS[stream];
  const template = templateOf(definition);
  // A pool keeps its names across runs, so that the family stays the same 16 workloads.
  const prefix = definition.namePool === undefined ? randomUUID().slice(0, 8) : 'pool';
  let counter = 0;
  return () => {
    counter++;
    const n = definition.namePool === undefined ? counter : counter % definition.namePool;
    const name = `bench-${prefix}-${n.toString(36)}`;
    return fill(template, { 'REQUEST-UID': randomUUID(), 'OBJECT-UID': randomUUID(), NAME: name, AGENT: name });
  };
}

/**
 * Makes the bodies of a family that grows, and of updates to its members: `create(i)`
 * creates the agent's i-th distinct Deployment (as `agent-creates-distinct` does), and
 * `update(i)` scales that one from 2 to 3 replicas, keeping the family's size.
 */
export function familyBodyFactory(): { create(i: number): string; update(i: number): string } {
  const create = templateOf(STREAMS['agent-creates-distinct']);
  const update = templateOf(MEMBER_UPDATE);
  const prefix = randomUUID().slice(0, 8);
  const body = (template: BodyTemplate, i: number) => {
    const name = `bench-${prefix}-${i.toString(36)}`;
    return fill(template, { 'REQUEST-UID': randomUUID(), 'OBJECT-UID': randomUUID(), NAME: name, AGENT: name });
  };
  return { create: (i) => body(create, i), update: (i) => body(update, i) };
}

/**
 * Makes review bodies of a fresh-agent stream for a given agent (service account name)
 * and workload name, each with a fresh request uid and object uid.
 */
export function agentBodyFactory(stream: StreamName): (agent: string, name: string) => string {
  const definition = STREAMS[stream];
  if (!definition.freshAgent) throw new Error(`${stream} does not name its agent per request`);
  const template = templateOf(definition);
  return (agent, name) => fill(template, { 'REQUEST-UID': randomUUID(), 'OBJECT-UID': randomUUID(), NAME: name, AGENT: agent });
}

function fill(template: BodyTemplate, values: Record<Slot, string>): string {
  let body = template.parts[0] ?? '';
  for (let i = 0; i < template.slots.length; i++) {
    const slot = template.slots[i];
    if (slot) body += values[slot] + (template.parts[i + 1] ?? '');
  }
  return body;
}

export function isStreamName(value: string): value is StreamName {
  return (ALL_STREAM_NAMES as readonly string[]).includes(value);
}
