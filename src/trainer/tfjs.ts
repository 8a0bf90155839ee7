// The one TensorFlow.js import of the trainer. The @tensorflow/tfjs bundle registers every op's
// gradient (tfjs-core alone registers none, and its ESM dist cannot be imported piecewise in
// Node); tfjs-node(-gpu) registers its backend with this same core instance.
//
// Loaded with require, not `export * from`: Node 20's ESM import of a CommonJS package runs
// cjs-module-lexer over it and every package it re-exports to find their names, 0.75 CPU s against
// 0.23 s by require (measured, Node 20.20), paid by every process that trains, mixes or evaluates
// (each stage pod, each trainer test file). So the names the code uses are listed here: a missing
// one is a tsc error where it is used, never a runtime surprise.
import { createRequire } from 'node:module';
import type * as Tfjs from '@tensorflow/tfjs';

const tfjs = createRequire(import.meta.url)('@tensorflow/tfjs') as typeof Tfjs;

export const {
  abs,
  add,
  addN,
  argMax,
  cast,
  clone,
  concat,
  cos,
  customGrad,
  dispose,
  div,
  engine,
  expandDims,
  fill,
  gather,
  getBackend,
  getKernel,
  grad,
  grads,
  keep,
  log,
  logSoftmax,
  matMul,
  max,
  mean,
  memory,
  mul,
  neg,
  norm,
  oneHot,
  ones,
  profile,
  randomNormal,
  randomUniform,
  ready,
  registerGradient,
  registerKernel,
  reshape,
  rsqrt,
  scalar,
  scatterND,
  setBackend,
  sigmoid,
  sin,
  slice,
  softmax,
  split,
  square,
  stack,
  sub,
  sum,
  tensor,
  tensor1d,
  tensor2d,
  tidy,
  tile,
  topk,
  transpose,
  unregisterKernel,
  valueAndGrad,
  valueAndGrads,
  variable,
  variableGrads,
  version,
  zeros,
  zerosLike,
  Cast,
  Identity,
  Variable,
} = tfjs;

export type Variable<R extends Tfjs.Rank = Tfjs.Rank> = Tfjs.Variable<R>;
export type {
  DataType,
  GradSaveFunc,
  KernelBackend,
  KernelFunc,
  NamedAttrMap,
  NamedTensorInfoMap,
  NamedTensorMap,
  Rank,
  Scalar,
  Tensor,
  Tensor1D,
  Tensor2D,
  Tensor3D,
  TensorInfo,
} from '@tensorflow/tfjs';
