/** Kubernetes Events on kiln resources (applied, pruned, failed), best effort. */
import type { KubeApi } from './client.js';
import type { KubeObject } from './informer.js';
import { now } from './status.js';
import { truncate } from './text.js';

export class EventRecorder {
  constructor(
    private readonly client: Pick<KubeApi, 'create'>,
    private readonly component: string,
    private readonly instance: string,
    private readonly log: (level: 'info' | 'warn' | 'error', msg: string, fields?: Record<string, unknown>) => void,
  ) {}

  normal(obj: KubeObject, reason: string, message: string): void {
    this.record(obj, 'Normal', reason, message);
  }

  warning(obj: KubeObject, reason: string, message: string): void {
    this.record(obj, 'Warning', reason, message);
  }

  private record(obj: KubeObject, type: 'Normal' | 'Warning', reason: string, message: string): void {
    const t = now();
    const event = {
      apiVersion: 'v1',
      kind: 'Event',
      metadata: { generateName: `${obj.metadata.name}.`, namespace: obj.metadata.namespace },
      involvedObject: { apiVersion: obj.apiVersion, kind: obj.kind, name: obj.metadata.name, namespace: obj.metadata.namespace, uid: obj.metadata.uid },
      type,
      reason,
      // The size kubectl and the events API keep of a note; cut whole characters, with a marker.
      message: truncate(message, 1024),
      source: { component: this.component },
      reportingComponent: this.component,
      reportingInstance: this.instance,
      firstTimestamp: t,
      lastTimestamp: t,
      count: 1,
    };
    // An Event lost is not worth failing a reconcile for.
    this.client.create(event).catch((err) => this.log('warn', 'could not record event', { reason, error: String(err) }));
  }
}
