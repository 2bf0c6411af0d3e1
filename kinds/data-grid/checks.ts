import type { Spec } from '../kind.js';
import type { FieldError } from '../../validate/errors.js';
import { checkGridSettings } from './resolve.js';

/** DataGrid and GridTemplate alike: what their own settings say (resolved ones are checked at render). */
export function checkDataGrid(spec: Spec, out: FieldError[]): void {
  checkGridSettings(spec, out);
}
