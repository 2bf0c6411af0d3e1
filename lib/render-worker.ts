/**
 * Worker thread for lib/synth.ts. It starts loading while the main thread
 * reads the inputs, renders its share, and streams each file into the staging
 * directory as soon as it is rendered, so writing overlaps with rendering.
 * The YAML never travels between threads.
 */
import { parentPort } from 'node:worker_threads';
import { renderDocument } from './render-document.js';
import { StagedWriter, type WorkerReply, type WorkItem } from './synth.js';

parentPort!.once('message', ({ items, stagingDir }: { items: WorkItem[]; stagingDir: string }) => {
  const writer = new StagedWriter(stagingDir);
  const summary: WorkerReply['summary'] = [];
  let reported = 0;
  items.forEach((item, i) => {
    const o = renderDocument(item.doc, item.context);
    if ('errors' in o) summary.push({ errors: o.errors });
    else if ('note' in o) summary.push({ note: o.note });
    else summary.push({ path: writer.write(o.path(''), o.yaml) });
    if ((i + 1) % 250 === 0) {
      parentPort!.postMessage({ progress: i + 1 - reported } satisfies WorkerReply);
      reported = i + 1;
    }
  });
  parentPort!.postMessage({ progress: items.length - reported, summary } satisfies WorkerReply);
});
