/**
 * Small builders for structural OpenAPI v3 schemas, so every field in crds/
 * carries a description and the same idioms (quantities, names, CEL rules)
 * are spelled once. crds/*.yaml is generated from these (npm run crds); the
 * YAML files, not these builders, are what the API server and offline
 * validation read.
 */

export interface CelRule {
  rule: string;
  message?: string;
  messageExpression?: string;
  fieldPath?: string;
  reason?: 'FieldValueInvalid' | 'FieldValueForbidden' | 'FieldValueRequired' | 'FieldValueDuplicate';
}

export interface Schema {
  type?: 'object' | 'array' | 'string' | 'integer' | 'number' | 'boolean';
  description?: string;
  properties?: Record<string, Schema>;
  required?: string[];
  additionalProperties?: Schema | boolean;
  items?: Schema;
  enum?: (string | number)[];
  default?: unknown;
  minimum?: number;
  maximum?: number;
  minLength?: number;
  maxLength?: number;
  minItems?: number;
  maxItems?: number;
  minProperties?: number;
  maxProperties?: number;
  pattern?: string;
  format?: string;
  anyOf?: Schema[];
  'x-kubernetes-int-or-string'?: boolean;
  'x-kubernetes-preserve-unknown-fields'?: boolean;
  'x-kubernetes-list-type'?: 'atomic' | 'set' | 'map';
  'x-kubernetes-list-map-keys'?: string[];
  'x-kubernetes-map-type'?: 'atomic' | 'granular';
  'x-kubernetes-validations'?: CelRule[];
}

type Extra = Omit<Schema, 'type' | 'description'>;

export const str = (description: string, extra: Extra = {}): Schema => ({
  type: 'string',
  description,
  maxLength: 253,
  ...extra,
});

export const int = (description: string, extra: Extra = {}): Schema => ({
  type: 'integer',
  format: 'int32',
  description,
  ...extra,
});

export const bool = (description: string, dflt?: boolean): Schema => ({
  type: 'boolean',
  description,
  ...(dflt === undefined ? {} : { default: dflt }),
});

export const enumOf = (description: string, values: string[], dflt?: string): Schema => ({
  type: 'string',
  description,
  enum: values,
  ...(dflt === undefined ? {} : { default: dflt }),
});

/** The values of each schema camelEnum() built: the API reference lists them (the schema itself holds a CEL rule). */
const camelEnums = new WeakMap<Schema, string[]>();

export function camelEnumValues(s: Schema): string[] | undefined {
  return camelEnums.get(s);
}

/**
 * A CamelCase enum (the Kubernetes API conventions' spelling) that refuses the
 * spellings kiln used before and names the new one, e.g.
 * `antiAffinity "soft" is now "Soft"`. It is a CEL rule rather than an OpenAPI
 * `enum`: the API server treats an unsupported enum value as a blocking error
 * and then runs no CEL rule at all, so an `enum` could only answer "supported
 * values: ...". The values are listed in the description and the API reference.
 */
export function camelEnum(field: string, description: string, values: string[], renamed: Record<string, string>, dflt?: string): Schema {
  const quote = (v: string) => `'${v}'`;
  const list = values.map(quote).join(', ');
  const map = `{${Object.entries(renamed)
    .map(([from, to]) => `${quote(from)}: ${quote(to)}`)
    .join(', ')}}`;
  const s: Schema = {
    type: 'string',
    description,
    maxLength: 32,
    ...(dflt === undefined ? {} : { default: dflt }),
    'x-kubernetes-validations': [
      {
        rule: `self in [${list}]`,
        messageExpression: `self in ${map} ? '${field} "' + self + '" is now "' + ${map}[self] + '"'` + ` : '${field} "' + self + '" is not one of ${values.join(', ')}'`,
      },
    ],
  };
  camelEnums.set(s, values);
  return s;
}

export const obj = (description: string, properties: Record<string, Schema>, extra: Extra = {}): Schema => ({ type: 'object', description, properties, ...extra });

export const list = (description: string, items: Schema, extra: Extra = {}): Schema => ({
  type: 'array',
  description,
  items,
  ...extra,
});

export const stringMap = (description: string, extra: Extra = {}): Schema => ({
  type: 'object',
  description,
  additionalProperties: { type: 'string', maxLength: 4096 },
  ...extra,
});

/** Kubernetes resource.Quantity, as the API server's own regexp spells it. */
export const QUANTITY_PATTERN = '^(\\+|-)?(([0-9]+(\\.[0-9]*)?)|(\\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\\+|-)?(([0-9]+(\\.[0-9]*)?)|(\\.[0-9]+))))?$';

/** A quantity written as a string (e.g. storage sizes, `10Gi`). */
export const quantity = (description: string, dflt?: string): Schema => ({
  type: 'string',
  description,
  maxLength: 64,
  'x-kubernetes-validations': [{ rule: 'isQuantity(self)', message: 'must be a Kubernetes quantity such as 10Gi or 500m' }],
  ...(dflt === undefined ? {} : { default: dflt }),
});

/** A quantity that may also be written as a bare integer (resources: `cpu: 2`). */
export const intOrQuantity = (description: string): Schema => ({
  description,
  anyOf: [{ type: 'integer' }, { type: 'string' }],
  pattern: QUANTITY_PATTERN,
  'x-kubernetes-int-or-string': true,
});

/** RFC 1123 DNS subdomain: names of Secrets, ConfigMaps, ServiceAccounts... */
export const DNS_SUBDOMAIN = '^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$';
/** RFC 1123 DNS label: namespaces, and names that become Service names. */
export const DNS_LABEL = '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$';

export const objectName = (description: string): Schema => str(description, { minLength: 1, maxLength: 253, pattern: DNS_SUBDOMAIN });

export const namespaceName = (description: string): Schema => str(description, { minLength: 1, maxLength: 63, pattern: DNS_LABEL });

export const immutable = (what: string): CelRule => ({
  rule: 'self == oldSelf',
  message: `${what} is immutable`,
});
