// The one TensorFlow.js import of the trainer. The @tensorflow/tfjs bundle registers every op's
// gradient (tfjs-core alone registers none, and its ESM dist cannot be imported piecewise in
// Node); tfjs-node(-gpu) registers its backend with this same core instance.
export * from '@tensorflow/tfjs';
