import assert from 'node:assert/strict';
import { test } from 'node:test';
import { containerPath, hostPath, parsePathMap } from '../../src/util/containerPaths.js';

const map = {
  '/btx': '/data/pvc/shared',
  '/btx/cache': '/data/empty/cache',
  '/dev/termination-log': '/data/pods/p/term',
};

test('hostPath maps the longest matching mount prefix and leaves other paths alone', () => {
  assert.equal(hostPath('/btx/runs/a', map), '/data/pvc/shared/runs/a');
  assert.equal(hostPath('/btx', map), '/data/pvc/shared');
  assert.equal(hostPath('/btx/cache/x', map), '/data/empty/cache/x');
  assert.equal(hostPath('/btxother/x', map), '/btxother/x');
  assert.equal(hostPath('/dev/termination-log', map), '/data/pods/p/term');
  assert.equal(hostPath('/tmp/x', {}), '/tmp/x');
});

test('containerPath inverts hostPath', () => {
  for (const p of ['/btx/runs/a/step-3', '/btx/cache/y', '/btx']) {
    assert.equal(containerPath(hostPath(p, map), map), p);
  }
});

test('parsePathMap rejects malformed maps with the variable name', () => {
  assert.deepEqual(parsePathMap(undefined), {});
  assert.throws(() => parsePathMap('[1]'), /BTX_LOCAL_PATHS/);
  assert.throws(() => parsePathMap('{"/btx": 3}'), /BTX_LOCAL_PATHS/);
});
