// Constants of the training step (rotary tables, the causal mask), built once per shape and backend
// and kept (tf.keep) across steps: issue 10's profile found them rebuilt and uploaded in every layer
// of every step.
import * as tf from './tfjs.js';

const constants = new Map<string, tf.Tensor>();

/** The tensor `build` makes for `key` on the current backend, built the first time only. */
export function cachedConstant(key: string, build: () => tf.Tensor): tf.Tensor {
  const full = `${tf.getBackend()}|${key}`;
  let t = constants.get(full);
  if (!t) {
    t = tf.keep(build());
    constants.set(full, t);
  }
  return t;
}
