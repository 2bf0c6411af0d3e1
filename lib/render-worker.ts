/** Worker thread for lib/synth.ts: renders its share and posts the outcomes back. */
import { parentPort, workerData } from 'node:worker_threads';
import { renderDocument, type Outcome } from './render-document.js';
import type { WorkItem } from './synth.js';

const items = workerData as WorkItem[];
const outcomes: Outcome[] = [];
let reported = 0;
items.forEach((item, i) => {
  outcomes.push(renderDocument(item.doc, item.context));
  if ((i + 1) % 250 === 0) {
    parentPort!.postMessage({ progress: i + 1 - reported });
    reported = i + 1;
  }
});
parentPort!.postMessage({ progress: items.length - reported, outcomes });
