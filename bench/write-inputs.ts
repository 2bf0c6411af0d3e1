/** npx tsx bench/write-inputs.ts <dir> <count>: the benchmark's inputs, for profiling by hand. */
import { writeMixedInputs } from './inputs.js';

writeMixedInputs(process.argv[2]!, Number(process.argv[3] ?? 1000));
