// The Mixtral config.json of a mixed model: every key of the dense experts' (Llama) config, with
// HF's Llama defaults written out (Mixtral's defaults differ: rope_theta 1e6, rms_norm_eps 1e-5),
// plus the MoE keys transformers reads and our own btx_* keys.
import type { LlamaConfig, MixtralConfig, RouterType } from '../hfConfig.js';

export interface MixtralKeys {
  numExperts: number;
  router: RouterType;
  /** Experts per token for topK; switch/sampleTop1 use 1 and soft uses all. */
  topK: number;
  auxLossCoef: number;
  expertNames: string[];
  routerInit: string;
  torchDtype: string;
}

/** num_experts_per_tok for a routing rule (transformers' Mixtral computes top-k with this k). */
export function expertsPerToken(router: RouterType, topK: number, numExperts: number): number {
  switch (router) {
    case 'topK':
      return topK;
    case 'switch':
    case 'sampleTop1':
      return 1;
    case 'soft':
      return numExperts;
  }
}

export function mixtralConfigFromLlama(dense: LlamaConfig, keys: MixtralKeys): MixtralConfig {
  const { model_type: _modelType, ...rest } = dense;
  return {
    ...rest,
    model_type: 'mixtral',
    architectures: ['MixtralForCausalLM'],
    num_local_experts: keys.numExperts,
    num_experts_per_tok: expertsPerToken(keys.router, keys.topK, keys.numExperts),
    router_aux_loss_coef: keys.auxLossCoef,
    // transformers adds the load-balancing loss only when this is on; BTX finetunes with it.
    output_router_logits: keys.auxLossCoef > 0,
    torch_dtype: keys.torchDtype,
    btx_router: keys.router,
    btx_experts: keys.expertNames,
    btx_router_init: keys.routerInit,
  };
}
