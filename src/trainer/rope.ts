// Rotary embedding inverse frequencies as Hugging Face computes them (modeling_rope_utils.py), with
// the rope_scaling types whose effect does not depend on the sequence length: none/default, linear and
// llama3 (Llama 3.x checkpoints). dynamic is the default as long as windows stay within
// max_position_embeddings (always, here); yarn, longrope and others are refused rather than ignored.

/** inv_freq[i] for i < headDim / 2, in float32 as HF computes it. */
export function ropeInverseFrequencies(headDim: number, theta: number, scaling: unknown): number[] {
  const base = Array.from({ length: headDim / 2 }, (_, i) =>
    Math.fround(1 / Math.pow(theta, (2 * i) / headDim)),
  );
  if (scaling === undefined || scaling === null) return base;
  if (typeof scaling !== 'object')
    throw new Error(`rope_scaling must be an object, got ${JSON.stringify(scaling)}`);
  const s = scaling as Record<string, unknown>;
  const type = s.rope_type ?? s.type ?? 'default';
  const num = (key: string, fallback?: number): number => {
    const v = s[key] ?? fallback;
    if (typeof v !== 'number' || !Number.isFinite(v)) throw new Error(`rope_scaling.${key} must be a number`);
    return v;
  };
  switch (type) {
    case 'default':
    case 'dynamic':
      return base;
    case 'linear':
      return base.map((f) => Math.fround(f / num('factor')));
    case 'llama3': {
      const factor = num('factor');
      const low = num('low_freq_factor');
      const high = num('high_freq_factor');
      const original = num('original_max_position_embeddings');
      const lowWavelen = original / low;
      const highWavelen = original / high;
      return base.map((f) => {
        const wavelen = (2 * Math.PI) / f;
        if (wavelen < highWavelen) return f;
        if (wavelen > lowWavelen) return Math.fround(f / factor);
        const smooth = (original / wavelen - low) / (high - low);
        return Math.fround((1 - smooth) * (f / factor) + smooth * f);
      });
    }
    default:
      throw new Error(
        `rope_scaling type ${JSON.stringify(type)} is not supported (default, linear, dynamic, llama3)`,
      );
  }
}
