/** Limits on what kiln reads (no dependencies: the command line loads it before the renderer). */
/** So one input cannot take all the memory. */
export interface InputLimits {
  /** Largest input file, in bytes. */
  maxFileBytes: number;
  /** Largest sum of all input files, in bytes. */
  maxTotalBytes: number;
}

export const DEFAULT_INPUT_LIMITS: InputLimits = { maxFileBytes: 16 * 2 ** 20, maxTotalBytes: 256 * 2 ** 20 };

/** An input kiln will not read (too large); a usage error, nothing is rendered. */
export class InputRefused extends Error {}
