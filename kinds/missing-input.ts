/**
 * Thrown by a chart when a render input its resource names is not there (a
 * DataGrid's GridTemplate). Not a fault of the resource: the controller waits
 * for it (Reconciling, and the kind's `reads` queue it again when it comes);
 * offline, synth reports it as a problem of the field named first in the message.
 */
export class MissingInput extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MissingInput';
  }
}
