// Objects are stored in one version per resource; a request for another served version gets a
// converted view. Custom resources only change apiVersion (conversion strategy None); events.k8s.io/v1
// events are core/v1 events with renamed fields, as the real server converts them.
import type { KObject } from '../apimachinery/meta.js';
import { apiVersionOf, type ResourceInfo } from './resources.js';

const EVENT_RENAMES: [core: string, v1: string][] = [
  ['involvedObject', 'regarding'],
  ['message', 'note'],
  ['firstTimestamp', 'deprecatedFirstTimestamp'],
  ['lastTimestamp', 'deprecatedLastTimestamp'],
  ['count', 'deprecatedCount'],
  ['source', 'deprecatedSource'],
  ['reportingComponent', 'reportingController'],
];

function rename(obj: KObject, pairs: [string, string][], apiVersion: string): KObject {
  const out: KObject = { ...obj, apiVersion };
  for (const [from, to] of pairs) {
    delete out[from];
    if (obj[from] !== undefined) out[to] = obj[from];
  }
  return out;
}

/** The stored object as the client asked for it. */
export function toView(info: ResourceInfo, version: string, obj: KObject): KObject {
  const apiVersion = apiVersionOf(info.group, version);
  if (info.group === 'events.k8s.io') {
    return rename(obj, EVENT_RENAMES, apiVersion);
  }
  return obj.apiVersion === apiVersion ? obj : { ...obj, apiVersion };
}

/** A client's object in storage form. */
export function fromView(info: ResourceInfo, obj: KObject): KObject {
  if (info.group === 'events.k8s.io') {
    return rename(
      obj,
      EVENT_RENAMES.map(([a, b]) => [b, a]),
      'v1',
    );
  }
  const storageApiVersion = apiVersionOf(info.group, info.versions[0]!);
  return obj.apiVersion === storageApiVersion ? obj : { ...obj, apiVersion: storageApiVersion };
}
