/** A validation failure, named by field path the way the API server names it. */
export interface FieldError {
  path: string;
  message: string;
}

export function formatErrors(errors: FieldError[]): string {
  return errors.map((e) => `${e.path}: ${e.message}`).join('; ');
}
