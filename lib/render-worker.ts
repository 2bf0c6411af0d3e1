/**
 * Worker thread for lib/synth.ts: reads, renders and writes the input files
 * it is handed (lib/render-files.ts), one request at a time, and says when it
 * has loaded so that it is handed files only from then on. The YAML never
 * travels between threads.
 */
import { parentPort, workerData } from 'node:worker_threads';
import type { InputLimits } from './inputs.js';
import { FileRenderer, toThreadError, type DeferredItem } from './render-files.js';

export interface WorkerSetup {
  stagingDir: string;
  strict: boolean;
  limits: InputLimits;
  /** The main thread's compile cache, for lib/render-worker-entry.ts. */
  compileCacheDir?: string;
}

export type WorkerRequest = { id: number; file: string; fileNo: number } | { id: number; deferred: DeferredItem[] };

const port = parentPort!;
const renderer = new FileRenderer((workerData as WorkerSetup).stagingDir, workerData as WorkerSetup);
port.on('message', (req: WorkerRequest) => {
  try {
    const result = 'file' in req ? renderer.renderFile(req.file, req.fileNo) : renderer.renderDeferred(req.deferred);
    port.postMessage({ id: req.id, result });
  } catch (err) {
    port.postMessage({ id: req.id, error: toThreadError(err) });
  }
});
port.postMessage({ ready: true });
